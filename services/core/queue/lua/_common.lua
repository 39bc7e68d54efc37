-- Shared helpers, prepended to every operation script when it is loaded (see _scripts.py).
--
-- Every script receives the same KEYS, all in the queue's hash-tag slot:
--   1..3 priority streams (high, normal, low)   4 delayed zset (member -> due ms)
--   5 parked hash (member -> packed envelope)   6 dead-letter stream
--   7 ordering holders (okey -> message id)     8 ordering counters (t:/h:<okey> -> seq)
--   9 ordering waiting line (<okey>\n<seq> -> packed envelope)
--   10 reclaim cursors (stream index -> next XAUTOCLAIM start; absent = from the start)
--   11 (enqueue only) idempotency key
-- Redis 6.2 needs effects replication before TIME followed by writes; absent/no-op on 7.x.
if redis.replicate_commands then redis.replicate_commands() end

local PRI = {high = 1, normal = 2, low = 3}
local FIELDS = {'id', 'payload', 'priority', 'attempts', 'max_attempts', 'headers', 'okey',
                'enqueued_at', 'replayed_from', 'last_error', 'failed_at', 'due', 'token'}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function to_map(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

local function to_flat(m)
  local flat = {}
  for _, f in ipairs(FIELDS) do
    local v = m[f]
    if v ~= nil and v ~= false then
      flat[#flat + 1] = f
      flat[#flat + 1] = tostring(v)
    end
  end
  return flat
end

local function ensure_group(stream, group)
  -- Creates the stream and the group when either is missing (a second group on an
  -- existing queue too). Looked up rather than tried: an error reply inside a script costs
  -- about as much as the rest of the script.
  if redis.call('EXISTS', stream) == 1 then
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      if info[2] == group then return end
    end
  end
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end

-- Put an envelope where a consumer can get it: its priority stream, or the delayed set
-- when it carries a due time still in the future. The consumer group need not exist yet:
-- every claim ensures it, created from the stream's start, so no entry is missed.
local function release(env, group)
  local due = tonumber(env.due or '0')
  if due > 0 and due > now_ms() then
    local member = env.id .. '|' .. (env.token or '')
    redis.call('ZADD', KEYS[4], due, member)
    redis.call('HSET', KEYS[5], member, cmsgpack.pack(to_flat(env)))
    return
  end
  env.due = nil
  env.token = nil
  redis.call('XADD', KEYS[PRI[env.priority] or 2], '*', unpack(to_flat(env)))
end

-- Ordering gate: one message per ordering key is "released" (in a stream, pending or
-- delayed) at a time; later ones wait in line, in enqueue order.
local function gate_enter(env, group)
  local k = env.okey
  if k == nil or k == false or k == '' then return release(env, group) end
  if redis.call('HSETNX', KEYS[7], k, env.id) == 1 then return release(env, group) end
  local seq = redis.call('HINCRBY', KEYS[8], 't:' .. k, 1)
  redis.call('HSET', KEYS[9], k .. '\n' .. seq, cmsgpack.pack(to_flat(env)))
end

-- The holder reached a terminal outcome (ack or dead): release the next in line, if any.
local function gate_leave(msg_id, k, group)
  if k == nil or k == false or k == '' then return end
  if redis.call('HGET', KEYS[7], k) ~= msg_id then return end
  local tail = tonumber(redis.call('HGET', KEYS[8], 't:' .. k) or '0')
  local head = tonumber(redis.call('HGET', KEYS[8], 'h:' .. k) or '0')
  while head < tail do
    head = head + 1
    local field = k .. '\n' .. head
    local packed = redis.call('HGET', KEYS[9], field)
    redis.call('HDEL', KEYS[9], field)
    redis.call('HSET', KEYS[8], 'h:' .. k, head)
    if packed then
      local nxt = to_map(cmsgpack.unpack(packed))
      redis.call('HSET', KEYS[7], k, nxt.id)
      return release(nxt, group)
    end
  end
  redis.call('HDEL', KEYS[7], k)
  redis.call('HDEL', KEYS[8], 't:' .. k, 'h:' .. k)
end

-- What max depth counts: messages accepted but not yet handed to a consumer. Ready
-- entries (stream length minus the group's pending ones), parked retries and delayed
-- messages, and messages waiting behind their ordering key. Not in-flight entries (bounded
-- by the consumers' own caps, and being worked on) nor dead letters (not moving work).
-- Returns that backlog, or a smaller upper bound of it when even that is below `limit`:
-- the pending counts (one XPENDING per stream) are only needed near the limit.
local function backlog(group, limit)
  local n = redis.call('ZCARD', KEYS[4]) + redis.call('HLEN', KEYS[9])
  local lens = {}
  for i = 1, 3 do
    lens[i] = redis.call('XLEN', KEYS[i])
    n = n + lens[i]
  end
  if n < limit then return n end
  for i = 1, 3 do
    if lens[i] > 0 then
      local ok, pending = pcall(redis.call, 'XPENDING', KEYS[i], group)
      if ok then n = n - math.min(lens[i], pending[1]) end
    end
  end
  return n
end

local function owned(i, entry_id, group, consumer)
  local p = redis.call('XPENDING', KEYS[i], group, entry_id, entry_id, 1, consumer)
  return #p > 0
end

local function entry_fields(i, entry_id)
  local r = redis.call('XRANGE', KEYS[i], entry_id, entry_id)
  if #r == 0 then return nil end
  return to_map(r[1][2])
end

-- Move a claimed entry to the dead-letter stream, trimming letters older than retention.
local function to_dead(i, entry_id, env, attempts, err, group, retention_ms)
  local now = now_ms()
  redis.call('XACK', KEYS[i], group, entry_id)
  redis.call('XDEL', KEYS[i], entry_id)
  env.attempts = attempts
  env.last_error = err
  env.failed_at = now
  env.due = nil
  env.token = nil
  local minid = math.max(0, now - retention_ms)
  redis.call('XADD', KEYS[6], 'MINID', '~', tostring(minid), '*', unpack(to_flat(env)))
  gate_leave(env.id, env.okey, group)
end
