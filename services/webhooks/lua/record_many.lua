-- Record several events' history in one call (the intake's batched RECEIVED records).
-- KEYS: for each event, its hash then its provider's log stream (all in the {_mesh} slot).
-- ARGV[1] retention ms, then per event: event id, event type, n_set, set pairs, n_keep,
-- keep pairs (see record_event). Returns how many were recorded.
local now = now_ms()
local retention = tonumber(ARGV[1])
local i = 2
for k = 1, #KEYS, 2 do
  local _, nxt = record_event(KEYS[k], KEYS[k + 1], ARGV[i], ARGV[i + 1], retention, now, i + 2)
  i = nxt
end
return #KEYS / 2
