--[[
  groupCounts: how many grouped jobs are ready (waiting) and delayed, and per
  group: ready jobs, active jobs.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: perGroup (true = also the per-group table).
  Returns {waiting, delayed, {gid, waiting, active, ...}}.
  Errors: none (damaged counters read as 0).
]]
--@include prelude
local waiting = 0
local rows = {}
local seen = {}
for _, gid in ipairs(redis.call('SMEMBERS', gk('all'))) do
  local n = redis.call('ZCARD', groupWaitKey(gid))
  waiting = waiting + n
  if P.perGroup then
    seen[gid] = true
    rows[#rows + 1] = gid
    rows[#rows + 1] = n
    rows[#rows + 1] = tonumber(redis.call('HGET', gk('active'), gid)) or 0
  end
end
if P.perGroup then
  local active = redis.call('HGETALL', gk('active'))
  for i = 1, #active, 2 do
    if not seen[active[i]] then
      rows[#rows + 1] = active[i]
      rows[#rows + 1] = 0
      rows[#rows + 1] = tonumber(active[i + 1]) or 0
    end
  end
end
return {waiting, redis.call('ZCARD', gk('delayed')), rows}
