-- ARGV: group, consumer, stream index, entry id, message id, ordering key.
-- Returns 1, or 0 when the consumer no longer holds the entry (lease lost).
local group, consumer, i, entry_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not owned(i, entry_id, group, consumer) then return 0 end
redis.call('XACK', KEYS[i], group, entry_id)
redis.call('XDEL', KEYS[i], entry_id)
gate_leave(ARGV[5], ARGV[6], group)
return 1
