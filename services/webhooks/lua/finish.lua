-- The worker's last step for one event, atomically: append it to the normalised-events
-- stream once per event id (a marker remembers the entry id), and record it in history
-- as processed, with its cursor.
-- KEYS[1] published marker, KEYS[2] normalised-events stream, KEYS[3] event hash,
-- KEYS[4] provider log stream.
-- ARGV[1] marker ttl ms, ARGV[2] stream retention ms, ARGV[3] history retention ms,
-- ARGV[4] event id, ARGV[5] event type, then from ARGV[6]: n_set, set pairs, n_keep,
-- keep pairs (see record_event), then the stream entry's field/value pairs.
-- Returns the cursor (the stream entry id; the first one's on a repeat).
local now = now_ms()
local cursor = redis.call('GET', KEYS[1])
if not cursor then
  local fields = {}
  for a = after_pairs(6), #ARGV do fields[#fields + 1] = ARGV[a] end
  local minid = math.max(0, now - tonumber(ARGV[2]))
  cursor = redis.call('XADD', KEYS[2], 'MINID', '~', tostring(minid), '*', unpack(fields))
  redis.call('SET', KEYS[1], cursor, 'PX', tonumber(ARGV[1]))
end
record_event(KEYS[3], KEYS[4], ARGV[4], ARGV[5], tonumber(ARGV[3]), now, 6, {'cursor', cursor})
return cursor
