-- Store a health result, only for an instance that is still registered.
-- ARGV: id, health.  Returns 1 when stored, 0 when the instance is gone.
if not redis.call('ZSCORE', KEYS[6], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return 1
