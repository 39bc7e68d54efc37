-- Shared by every webhooks script (prepended when loaded, see history.load_lua).
-- Redis 6.2 needs effects replication before TIME followed by writes; no-op on 7.x.
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Upsert an event's history hash: `set` pairs always, `keep` pairs only where absent; log
-- the event in its provider's log stream exactly once. Returns the log entry id.
-- `argv` holds, from index `i`: count of set pairs, the set pairs, count of keep pairs,
-- the keep pairs. Returns the log id and the index after the last pair read.
local function record_event(hash, log, event_id, event_type, retention, now, i)
  for _ = 1, tonumber(ARGV[i]) do
    redis.call('HSET', hash, ARGV[i + 1], ARGV[i + 2])
    i = i + 2
  end
  i = i + 1
  for _ = 1, tonumber(ARGV[i]) do
    redis.call('HSETNX', hash, ARGV[i + 1], ARGV[i + 2])
    i = i + 2
  end
  i = i + 1
  redis.call('HSET', hash, 'updated_ms', now)
  local logged = redis.call('HGET', hash, 'log_id')
  if not logged then
    local minid = math.max(0, now - retention)
    logged = redis.call('XADD', log, 'MINID', '~', tostring(minid), '*', 'event_id', event_id, 'type', event_type)
    redis.call('HSET', hash, 'log_id', logged)
  end
  redis.call('PEXPIRE', hash, retention)
  return logged, i
end
