-- ARGV: group, consumer, then per entry: stream index, entry id, message id, ordering key.
-- Settles every entry as ack.lua does, in order; returns one 1 (acked) or 0 (the consumer
-- no longer holds the entry: lease lost) per entry.
local group, consumer = ARGV[1], ARGV[2]
local out = {}
for j = 3, #ARGV, 4 do
  local i, entry_id = tonumber(ARGV[j]), ARGV[j + 1]
  if owned(i, entry_id, group, consumer) then
    redis.call('XACK', KEYS[i], group, entry_id)
    redis.call('XDEL', KEYS[i], entry_id)
    gate_leave(ARGV[j + 2], ARGV[j + 3], group)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
