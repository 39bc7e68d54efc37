-- Live instances of one service, read on its slot with Redis' clock (a cluster pipeline
-- cannot carry TIME). Returns {now_ms, {id, expiry_ms, record, since_ms, health|false}...}.
local now = now_ms()
local out = {now}
local live = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #live, 2 do
  local id = live[i]
  local record = redis.call('HGET', KEYS[1], id)
  if record then
    out[#out + 1] = {id, live[i + 1], record, redis.call('HGET', KEYS[4], id) or '0',
                     redis.call('HGET', KEYS[5], id)}
  end
end
return out
