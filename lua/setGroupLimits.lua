--[[
  setGroupLimits: set or clear the concurrency and rate limit of one group,
  or the default for every group (gid "*").

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: gid, concurrency (nil = leave, 0 = clear), max and
    durationMs (nil = leave, max 0 = clear).
  Returns 1. Groups parked by a limit that was raised or cleared are made
  ready again.
  Errors: none.
]]
--@include prelude
local conf = gk('conf')
if P.concurrency then
  if P.concurrency > 0 then
    redis.call('HSET', conf, 'c:' .. P.gid, P.concurrency)
  else
    redis.call('HDEL', conf, 'c:' .. P.gid)
  end
end
if P.max then
  if P.max > 0 then
    redis.call('HSET', conf, 'm:' .. P.gid, P.max, 'd:' .. P.gid, P.durationMs)
  else
    redis.call('HDEL', conf, 'm:' .. P.gid, 'd:' .. P.gid)
  end
end
-- Re-evaluate parked groups: the next take parks them again if still limited.
local states = redis.call('HGETALL', gk('state'))
for i = 1, #states, 2 do
  local gid, st = states[i], states[i + 1]
  if (st == 'c' or st == 't') and (P.gid == '*' or P.gid == gid) then
    redis.call('ZREM', gk('limited'), gid)
    if redis.call('ZCARD', groupWaitKey(gid)) > 0 then
      groupMakeReady(gid)
    else
      redis.call('HDEL', gk('state'), gid)
    end
  end
end
if groupReadyCount() > 0 then markReady() end
return 1
