-- Record one event's history. KEYS[1] its hash, KEYS[2] the provider's log stream.
-- ARGV[1] event id, ARGV[2] event type, ARGV[3] retention ms, then from ARGV[4]:
-- n_set, set pairs, n_keep, keep pairs (see record_event). Returns 1 when this record created
-- the event's history, else 0 (it updated an existing one).
local _, _, created = record_event(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), now_ms(), 4)
if created then return 1 end
return 0
