-- Move a held entry to the dead-letter stream.
-- ARGV: group, consumer, stream index, entry id, attempts done, error, retention ms,
-- message id, ordering key (to free the gate when the entry's data was deleted under us).
-- Returns 1, or 0 when the consumer no longer holds the entry.
local group, consumer, i, entry_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not owned(i, entry_id, group, consumer) then return 0 end
local env = entry_fields(i, entry_id)
if env == nil then
  redis.call('XACK', KEYS[i], group, entry_id)
  gate_leave(ARGV[8], ARGV[9], group)
  return 0
end
to_dead(i, entry_id, env, ARGV[5], ARGV[6], group, tonumber(ARGV[7]))
return 1
