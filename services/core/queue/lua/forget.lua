-- Remove a stopped consumer from the group of every stream where it holds nothing, so
-- consumer lists do not grow with every restart. DELCONSUMER would drop held entries, so a
-- consumer that still holds any is kept (its entries are reclaimed after a lease).
-- ARGV: group, consumer. Returns how many streams still list it.
local group, consumer = ARGV[1], ARGV[2]
local kept = 0
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local ok, p = pcall(redis.call, 'XPENDING', KEYS[i], group, '-', '+', 1, consumer)
    if ok and #p == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[i], group, consumer)
    elseif ok then
      kept = kept + 1
    end
  end
end
return kept
