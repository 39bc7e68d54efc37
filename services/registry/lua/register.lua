-- Register (or re-register) an instance and grant a lease.
-- ARGV: id, address, record, lease token, ttl ms, initial health (UNKNOWN)
-- Returns {1|0 new, expires ms, since ms, record changed 1|0}, or {-1, holder address}
-- when a live instance with this id has another address.
local id, address, ttl = ARGV[1], ARGV[2], tonumber(ARGV[5])
local now = now_ms()
local exp = redis.call('ZSCORE', KEYS[6], id)
local live = exp and tonumber(exp) > now
if live then
  local holder = redis.call('HGET', KEYS[2], id)
  if holder and holder ~= address then return {-1, holder} end
end
local new = 0
if not live then
  remove(id)
  redis.call('HSET', KEYS[4], id, now)
  redis.call('HSET', KEYS[5], id, ARGV[6])
  new = 1
end
local changed = 1
if live and redis.call('HGET', KEYS[1], id) == ARGV[3] then changed = 0 end
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('HSET', KEYS[2], id, address)
redis.call('HSET', KEYS[3], id, ARGV[4] .. '|' .. ttl)
redis.call('ZADD', KEYS[6], now + ttl, id)
return {new, now + ttl, tonumber(redis.call('HGET', KEYS[4], id)), changed}
