-- Give a service a router queue unless the set of services with one is already at its cap.
-- KEYS: 1 router-services set.  ARGV: 1 service, 2 cap, 3 '1' = admit past the cap (the
-- service has a live instance or a route).  Returns {admitted 0/1, members after}.
-- A member is always admitted; check and SADD are one step, so concurrent Sends on any
-- number of replicas never overshoot the cap (a service put back without this script, when
-- a retirement is undone, can; see dispatcher.py).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return {1, redis.call('SCARD', KEYS[1])}
end
local n = redis.call('SCARD', KEYS[1])
if ARGV[3] ~= '1' and n >= tonumber(ARGV[2]) then
  return {0, n}
end
redis.call('SADD', KEYS[1], ARGV[1])
return {1, n + 1}
