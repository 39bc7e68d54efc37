-- ARGV: group, idempotency ttl ms, delay ms, max depth (0 = no limit), then the envelope
-- as field/value pairs.
-- Returns {1, id} when enqueued, {0, first id} when the idempotency key was seen before,
-- {-1, backlog} when the queue's backlog is at max depth (nothing written, key not kept).
-- The key is checked before the limit, so a repeat of a held message is still a duplicate
-- when the queue is full; it is remembered only once the message is really added.
local group, ttl, delay, max_depth = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local flat = {}
for i = 5, #ARGV do flat[#flat + 1] = ARGV[i] end
local env = to_map(flat)
local first = KEYS[11] and redis.call('GET', KEYS[11])
if first then return {0, first} end
if max_depth > 0 then
  local waiting = backlog(group, max_depth)
  if waiting >= max_depth then return {-1, waiting} end
end
if KEYS[11] then redis.call('SET', KEYS[11], env.id, 'PX', ttl) end
local now = now_ms()
env.enqueued_at = now
if delay > 0 then env.due = now + delay end
gate_enter(env, group)
return {1, env.id}
