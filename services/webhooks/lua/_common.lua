-- Shared by every webhooks script (prepended when loaded, see history.load_lua).
-- Redis 6.2 needs effects replication before TIME followed by writes; no-op on 7.x.
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The index after the `n_set, set pairs, n_keep, keep pairs` arguments that start at `i`
-- (what record_event returns, for a script that needs it before calling it).
local function after_pairs(i)
  local keep_at = i + 1 + 2 * tonumber(ARGV[i])
  return keep_at + 1 + 2 * tonumber(ARGV[keep_at])
end

-- Upsert an event's history hash. `set` pairs (then `extra`, a Lua list of field/value
-- pairs) are written every time; `keep` pairs (the raw record, when it was received, its
-- first status) only when the hash is created, which is also when the event is logged in
-- its provider's log stream (exactly once) and the hash gets its TTL: retention counts
-- from the first record. Every record sets log_id, so its absence means a new hash; keep
-- pairs go first, so a set pair of the same name wins. One HGET and one HSET for an event
-- already recorded, the worker's common case.
-- `argv` holds, from index `i`: count of set pairs, the set pairs, count of keep pairs,
-- the keep pairs. Returns the log id, the index after the last pair read, and whether this
-- record created the hash.
local function record_event(hash, log, event_id, event_type, retention, now, i, extra)
  local logged = redis.call('HGET', hash, 'log_id')
  local set_from, n_set = i + 1, tonumber(ARGV[i])
  local keep_at = set_from + 2 * n_set
  local keep_from, n_keep = keep_at + 1, tonumber(ARGV[keep_at])
  i = keep_from + 2 * n_keep
  local fields = {}
  local created = not logged
  if created then
    for k = keep_from, keep_from + 2 * n_keep - 1 do fields[#fields + 1] = ARGV[k] end
    local minid = math.max(0, now - retention)
    logged = redis.call('XADD', log, 'MINID', '~', tostring(minid), '*', 'event_id', event_id, 'type', event_type)
    fields[#fields + 1] = 'log_id'
    fields[#fields + 1] = logged
  end
  for k = set_from, set_from + 2 * n_set - 1 do fields[#fields + 1] = ARGV[k] end
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  fields[#fields + 1] = 'updated_ms'
  fields[#fields + 1] = now
  redis.call('HSET', hash, unpack(fields))
  if created then redis.call('PEXPIRE', hash, retention) end
  return logged, i, created
end
