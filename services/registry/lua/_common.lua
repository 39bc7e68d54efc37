-- Shared by every registry script (prepended when loaded, see services/registry/scripts.py).
-- KEYS, all in one service's hash-tag slot:
--   1 inst (id -> serialized ServiceInstance)   2 addr (id -> "host:port")
--   3 lease (id -> "<token>|<ttl ms>")           4 since (id -> first registration, ms)
--   5 health (id -> serialized InstanceHealth)  6 exp zset (id -> lease expiry, ms)
-- Redis 6.2 needs effects replication before TIME followed by writes.
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Remove one instance everywhere; returns its record and health (false when absent).
local function remove(id)
  local record = redis.call('HGET', KEYS[1], id)
  local health = redis.call('HGET', KEYS[5], id)
  for i = 1, 5 do redis.call('HDEL', KEYS[i], id) end
  redis.call('ZREM', KEYS[6], id)
  return record, health
end
