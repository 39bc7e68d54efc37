-- Take or keep a leadership lease (one key, KEYS[1]).  ARGV: holder, ttl ms
-- Returns 1 when ARGV[1] holds it afterwards.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
