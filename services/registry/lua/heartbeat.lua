-- Renew a lease for another granted ttl.  ARGV: id, token
-- Returns {expires ms, ttl ms}, or {-1} when the lease is unknown, replaced or expired.
local id, token = ARGV[1], ARGV[2]
local now = now_ms()
local exp = redis.call('ZSCORE', KEYS[6], id)
local held = redis.call('HGET', KEYS[3], id)
if not exp or tonumber(exp) <= now or not held then return {-1} end
local sep = string.find(held, '|', 1, true)
if string.sub(held, 1, sep - 1) ~= token then return {-1} end
local ttl = tonumber(string.sub(held, sep + 1))
redis.call('ZADD', KEYS[6], now + ttl, id)
return {now + ttl, ttl}
