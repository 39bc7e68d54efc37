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
-- Every record sets log_id, so its absence means a new hash: then the whole record is one
-- HSET (the common case, intake's RECEIVED record); otherwise keep pairs are HSETNX'd.
local function record_event(hash, log, event_id, event_type, retention, now, i)
  local logged = redis.call('HGET', hash, 'log_id')
  local set_from, n_set = i + 1, tonumber(ARGV[i])
  i = i + 1 + 2 * n_set
  local fields = {}
  for _ = 1, tonumber(ARGV[i]) do
    if logged then
      redis.call('HSETNX', hash, ARGV[i + 1], ARGV[i + 2])
    else
      fields[#fields + 1] = ARGV[i + 1]
      fields[#fields + 1] = ARGV[i + 2]
    end
    i = i + 2
  end
  i = i + 1
  for k = set_from, set_from + 2 * n_set - 1 do fields[#fields + 1] = ARGV[k] end
  fields[#fields + 1] = 'updated_ms'
  fields[#fields + 1] = now
  if not logged then
    local minid = math.max(0, now - retention)
    logged = redis.call('XADD', log, 'MINID', '~', tostring(minid), '*', 'event_id', event_id, 'type', event_type)
    fields[#fields + 1] = 'log_id'
    fields[#fields + 1] = logged
  end
  redis.call('HSET', hash, unpack(fields))
  redis.call('PEXPIRE', hash, retention)
  return logged, i
end
