-- A page of the normalised-events stream after a position, with the stream's oldest and
-- newest entry ids taken in the same instant, so that "was anything after the position
-- trimmed?" is answered for exactly this read. Read-only; one key.
-- KEYS[1] the stream. ARGV[1] position (exclusive; "0-0" = from the oldest), ARGV[2] count.
-- Returns {oldest id or nil, newest id or nil, entries as XRANGE returns them}.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {first and first[1] or false, last and last[1] or false, rows}
