-- ARGV: group, idempotency ttl ms, delay ms, then the envelope as field/value pairs.
-- Returns {1, id} when enqueued, {0, first id} when the idempotency key was seen before.
local group, ttl, delay = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local flat = {}
for i = 4, #ARGV do flat[#flat + 1] = ARGV[i] end
local env = to_map(flat)
if KEYS[11] then
  local first = redis.call('GET', KEYS[11])
  if first then return {0, first} end
  redis.call('SET', KEYS[11], env.id, 'PX', ttl)
end
local now = now_ms()
env.enqueued_at = now
if delay > 0 then env.due = now + delay end
gate_enter(env, group)
return {1, env.id}
