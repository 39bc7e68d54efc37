-- Delete KEYS[1] only if it still holds ARGV[1]: releases a lock we own, or invalidates
-- the cached token we were given, without clobbering a newer value another replica wrote.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
