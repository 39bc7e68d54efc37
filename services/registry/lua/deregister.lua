-- Remove an instance at once.  ARGV: id, token ('' = any holder)
-- Returns {1, record, health} when removed, {0} when unknown (or the token is stale).
local id, token = ARGV[1], ARGV[2]
if token ~= '' then
  local held = redis.call('HGET', KEYS[3], id)
  if not held then return {0} end
  local sep = string.find(held, '|', 1, true)
  if string.sub(held, 1, sep - 1) ~= token then return {0} end
end
if not redis.call('ZSCORE', KEYS[6], id) then return {0} end
local record, health = remove(id)
return {1, record or '', health or ''}
