-- Count a router queue's delayed retries and dead letters per priority (read only).
-- KEYS: 1 parked hash (member -> cmsgpack'd flat envelope), 2 dead-letter stream.
-- ARGV: scan cap.  Returns {delayed high, normal, low, dead high, normal, low}.
local IDX = {high = 1, normal = 2, low = 3}
local out = {0, 0, 0, 0, 0, 0}
local cap = tonumber(ARGV[1])
local function bump(offset, flat)
  for i = 1, #flat - 1, 2 do
    if flat[i] == 'priority' then
      local n = IDX[flat[i + 1]] or 2
      out[offset + n] = out[offset + n] + 1
      return
    end
  end
  out[offset + 2] = out[offset + 2] + 1
end
local parked = redis.call('HVALS', KEYS[1])
for i = 1, math.min(#parked, cap) do bump(0, cmsgpack.unpack(parked[i])) end
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', cap)) do bump(3, entry[2]) end
return out
