-- ARGV: group. Read-only: the queue's numbers in one round trip, on the queue's own node
-- (a pipeline with TIME cannot be routed in Redis Cluster).
-- Returns {sec, usec, then per stream: xlen, first entry id or false, pending count,
--          then delayed count, dead count, ordering-waiting count}.
local t = redis.call('TIME')
local out = {t[1], t[2]}
for i = 1, 3 do
  out[#out + 1] = redis.call('XLEN', KEYS[i])
  local first = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)
  out[#out + 1] = first[1] and first[1][1] or false
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[1])
  out[#out + 1] = (ok and pending[1]) or 0
end
out[#out + 1] = redis.call('ZCARD', KEYS[4])
out[#out + 1] = redis.call('XLEN', KEYS[6])
out[#out + 1] = redis.call('HLEN', KEYS[9])
return out
