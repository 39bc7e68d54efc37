-- Renew leases: reset the idle time of entries this consumer still holds (XCLAIM JUSTID
-- does not count a delivery). Never takes an entry that another consumer now holds.
-- ARGV: group, consumer, then stream index / entry id pairs. Returns the 1-based positions
-- of the pairs no longer held (positions, not ids: two streams can share an entry id).
local group, consumer = ARGV[1], ARGV[2]
local lost = {}
for a = 3, #ARGV, 2 do
  local i, entry_id = tonumber(ARGV[a]), ARGV[a + 1]
  if owned(i, entry_id, group, consumer) then
    redis.call('XCLAIM', KEYS[i], group, consumer, 0, entry_id, 'JUSTID')
  else
    lost[#lost + 1] = (a - 1) / 2
  end
end
return lost
