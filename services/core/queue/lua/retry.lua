-- Park a held entry in the delayed set until now + delay; it leaves the pending list.
-- The ordering gate stays held by this message until its terminal outcome.
-- ARGV: group, consumer, stream index, entry id, delay ms, attempts done, error, token,
-- message id, ordering key (to free the gate when the entry's data was deleted under us).
-- Returns the due time in ms, or 0 when the consumer no longer holds the entry.
local group, consumer, i, entry_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not owned(i, entry_id, group, consumer) then return 0 end
local env = entry_fields(i, entry_id)
redis.call('XACK', KEYS[i], group, entry_id)
redis.call('XDEL', KEYS[i], entry_id)
if env == nil then  -- deleted by an operator: nothing to park, but the gate must not stay held
  gate_leave(ARGV[9], ARGV[10], group)
  return 0
end
local due = now_ms() + tonumber(ARGV[5])
env.attempts = ARGV[6]
env.last_error = ARGV[7]
env.due = due
env.token = ARGV[8]
release(env, group)
return due
