-- Move dead letters back to their priority stream (through the ordering gate) with the
-- same message id, a replayed_from field and the attempt counter reset.
-- ARGV: group, mode ('ids' | 'range'), then ids, or start, end, count.
-- Returns {replayed count, last dead-letter id looked at}.
local group, mode = ARGV[1], ARGV[2]
local entries = {}
if mode == 'range' then
  entries = redis.call('XRANGE', KEYS[6], ARGV[3], ARGV[4], 'COUNT', tonumber(ARGV[5]))
else
  for a = 3, #ARGV do
    local r = redis.call('XRANGE', KEYS[6], ARGV[a], ARGV[a])
    if #r > 0 then entries[#entries + 1] = r[1] end
  end
end
local n, last = 0, ''
for _, e in ipairs(entries) do
  local env = to_map(e[2])
  env.replayed_from = e[1]
  env.attempts = 0
  env.last_error, env.failed_at, env.due, env.token = nil, nil, nil, nil
  redis.call('XDEL', KEYS[6], e[1])
  gate_enter(env, group)
  n = n + 1
  last = e[1]
end
return {n, last}
