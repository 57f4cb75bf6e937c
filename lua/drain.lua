--[[
  drain: remove every ready job (wait and prioritized) and, when asked,
  every delayed job. Active and finished jobs are left alone.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: delayed (true = delayed jobs too), batch (max jobs per call).
  A deleted child leaves its parent's dependencies (flowDropChild in
  includes/flow.lua: a parent left waiting for nothing is deleted when it
  is in this queue, moves on when it is in another).
  Returns the number of jobs still to remove (call again while > 0).
  Errors: none (damaged job keys are deleted like any other).
]]
--@include prelude
--@include flow
local budget = P.batch
local function drain(key, isList)
  budget = budget - deleteBatch(key, budget, isList, flowDropChild)
end
drain(kWait, true)
drain(kPaused, true)
drain(kPrioritized)
if P.delayed then
  drain(kDelayed)
  drain(gk('delayed'))
end
-- Grouped ready jobs: empty each group's queue (its state entries go stale
-- and are dropped by the next take).
local groupsLeft = 0
for _, gid in ipairs(redis.call('SMEMBERS', gk('all'))) do
  drain(groupWaitKey(gid))
  local n = redis.call('ZCARD', groupWaitKey(gid))
  if n == 0 then redis.call('SREM', gk('all'), gid) end
  groupsLeft = groupsLeft + n
end
local left = redis.call('LLEN', kWait) + redis.call('LLEN', kPaused) + redis.call('ZCARD', kPrioritized)
             + groupsLeft
if P.delayed then left = left + redis.call('ZCARD', kDelayed) + redis.call('ZCARD', gk('delayed')) end
if redis.call('ZCARD', kPrioritized) == 0 then redis.call('DEL', kPc) end
if left == 0 then
  redis.call('ZREM', kMarker, '0')
  if P.delayed then redis.call('DEL', kMarker) end
end
return left
