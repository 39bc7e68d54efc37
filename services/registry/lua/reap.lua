-- Remove instances whose lease expired.  ARGV: limit
-- Returns a flat list: id, record, health, ... (each removed exactly once, by one replica).
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local record, health = remove(id)
  out[#out + 1] = id
  out[#out + 1] = record or ''
  out[#out + 1] = health or ''
end
return out
