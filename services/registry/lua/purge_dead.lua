-- Delete a router queue's whole dead-letter stream; returns how many letters it held.
-- KEYS: 1 dead-letter stream.  XLEN and DEL in one step, so the count is exactly what was
-- deleted (letters dead-lettered or purged concurrently cannot skew it).
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
