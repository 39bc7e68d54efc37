-- Sliding-window-log rate limit over one or more keys, decided atomically.
--
-- KEYS[i]    a sorted set of admitted calls (score = admission time in microseconds);
--            all keys share one hash tag, so the script runs in one cluster slot.
-- ARGV[1]    window length in microseconds
-- ARGV[2]    unique member for this call (so two calls in the same microsecond both count)
-- ARGV[2+i]  limit of KEYS[i] (calls per window); 0 means unlimited
--
-- The call is admitted only if every key has room; then it is recorded in every key.
-- Returns {1, 0} when admitted, else {0, retry_after_us}: how long until the oldest call
-- in the fullest window leaves it. Time comes from the Redis server (TIME), so replicas
-- with skewed clocks still share one exact window.
if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local member = ARGV[2]
local wait = 0

for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i])
  if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      local until_free = tonumber(oldest[2]) + window - now
      if until_free < 1 then until_free = 1 end
      if until_free > wait then wait = until_free end
    end
  end
end

if wait > 0 then
  return {0, wait}
end

local ttl = math.ceil(window / 1000) + 1000
for i, key in ipairs(KEYS) do
  if tonumber(ARGV[2 + i]) > 0 then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, ttl)
  end
end
return {1, 0}
