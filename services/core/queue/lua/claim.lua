-- One claim: promote due retries, reclaim entries idle past the lease, read new entries
-- high -> normal -> low under weighted budgets. Entries over the delivery ceiling or past
-- their max attempts go to dead letters here.
-- ARGV: group, consumer, count, lease ms, w_high, w_normal, w_low, max deliveries,
--       pick in [0,1) (client randomness for rounding the budgets), promote limit,
--       dead retention ms.
-- Returns {now ms, ms until the next delayed entry is due (-1: none), {i, entry id,
--          fields, attempt}...}
local group, consumer = ARGV[1], ARGV[2]
local count, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local w = {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
local max_deliveries, pick = tonumber(ARGV[8]), tonumber(ARGV[9])
local promote_limit, retention = tonumber(ARGV[10]), tonumber(ARGV[11])
local now = now_ms()
for i = 1, 3 do ensure_group(KEYS[i], group) end

local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, promote_limit)
for _, member in ipairs(due) do
  local packed = redis.call('HGET', KEYS[5], member)
  redis.call('ZREM', KEYS[4], member)
  redis.call('HDEL', KEYS[5], member)
  if packed then
    local env = to_map(cmsgpack.unpack(packed))
    env.due = nil
    release(env, group)
  end
end

local out = {}
for i = 1, 3 do
  if #out >= count then break end
  -- Resume where the last scan stopped, so entries deep in a big PEL are reached too.
  local cursor = redis.call('HGET', KEYS[10], i) or '0-0'
  local r = redis.call('XAUTOCLAIM', KEYS[i], group, consumer, lease, cursor,
                       'COUNT', count - #out)
  if r[1] == '0-0' then
    redis.call('HDEL', KEYS[10], i)
  else
    redis.call('HSET', KEYS[10], i, r[1])
  end
  for _, e in ipairs(r[2]) do
    if type(e[2]) == 'table' then
      local p = redis.call('XPENDING', KEYS[i], group, e[1], e[1], 1)
      local d = (#p > 0) and tonumber(p[1][4]) or 1
      local env = to_map(e[2])
      local attempt = tonumber(env.attempts or '0') + d
      if d > max_deliveries then
        to_dead(i, e[1], env, attempt - 1, 'delivery ceiling: ' .. (d - 1) ..
                ' deliveries ended without an outcome', group, retention)
      elseif attempt > tonumber(env.max_attempts) then
        to_dead(i, e[1], env, attempt - 1, 'lease expired on the last attempt', group,
                retention)
      else
        out[#out + 1] = {i, e[1], e[2], attempt}
      end
    else
      redis.call('XACK', KEYS[i], group, e[1])  -- deleted entry left in the PEL (6.2)
    end
  end
end

local function read(i, n)
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n,
                       'STREAMS', KEYS[i], '>')
  if not r then return 0 end
  local got = 0
  for _, e in ipairs(r[1][2]) do
    local env = to_map(e[2])
    out[#out + 1] = {i, e[1], e[2], tonumber(env.attempts or '0') + 1}
    got = got + 1
  end
  return got
end

local left = count - #out
if left > 0 then
  local total = w[1] + w[2] + w[3]
  local quota, used = {}, 0
  for i = 1, 3 do
    quota[i] = math.floor(left * w[i] / total)
    used = used + quota[i]
  end
  for _ = 1, left - used do  -- the rounding remainder goes by weighted lot
    local x, acc, chosen = pick * total, 0, 3
    for i = 1, 3 do
      acc = acc + w[i]
      if x < acc then chosen = i; break end
    end
    quota[chosen] = quota[chosen] + 1
    pick = (pick + 0.6180339887) % 1
  end
  local carry, empty = 0, {}
  for i = 1, 3 do
    local n = quota[i] + carry
    local got = 0
    if n > 0 then got = read(i, n) end
    if got < n then empty[i] = true end
    carry = n - got
  end
  left = count - #out
  for i = 1, 3 do
    if left <= 0 then break end
    if not empty[i] then left = left - read(i, left) end
  end
end

local next_due = -1
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if #first > 0 then next_due = math.max(0, tonumber(first[2]) - now_ms()) end
return {now, next_due, out}
