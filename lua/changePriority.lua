--[[
  changePriority: give a waiting or delayed job a new priority.

  A ready job (in wait, prioritized, or its group's wait) is taken out and
  pushed back with the new priority, last among the jobs of that priority,
  as BullMQ's changePriority does. A delayed job keeps its due time; the new
  priority applies when it becomes ready. Only the job's `priority` field
  changes (`opts` keeps what the producer asked for, as in BullMQ).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, priority (0 = none, 1 = the highest).
  Returns 1.
  Errors: E_JOB_MISSING (-1) when the job does not exist, E_WRONG_STATE (-7)
  when it is active, finished or waiting for children (both: nothing
  written), E_JOB_CORRUPT (-8) when it is damaged (then failed alone,
  includes/damage.lua).
]]
--@include prelude
local jobId = P.id
local jobKey = base .. jobId
if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
local f, damage = readJob(jobKey, 'gid')
local gid = f and f.gid or redis.pcall('HGET', jobKey, 'gid')
if type(gid) ~= 'string' then gid = nil end
local prev
if redis.call('LPOS', kWait, jobId) or redis.call('LPOS', kPaused, jobId) then
  prev = 'wait'
elseif redis.call('ZSCORE', kPrioritized, jobId) then
  prev = 'prioritized'
elseif gid and redis.call('ZSCORE', groupWaitKey(gid), jobId) then
  prev = 'group'
elseif redis.call('ZSCORE', kDelayed, jobId) or redis.call('ZSCORE', gk('delayed'), jobId) then
  prev = 'delayed'
else
  return E_WRONG_STATE
end
if damage then
  if prev ~= 'delayed' then
    redis.call('LREM', kWait, 0, jobId)
    redis.call('LREM', kPaused, 0, jobId)
    redis.call('ZREM', kPrioritized, jobId)
    if gid then redis.call('ZREM', groupWaitKey(gid), jobId) end
  else
    redis.call('ZREM', kDelayed, jobId)
    redis.call('ZREM', gk('delayed'), jobId)
  end
  failDamaged(jobId, damage, prev)
  return E_JOB_CORRUPT
end
redis.call('HSET', jobKey, 'priority', P.priority)
if prev == 'delayed' then return 1 end
if prev == 'wait' then
  redis.call('LREM', kWait, 0, jobId)
  redis.call('LREM', kPaused, 0, jobId)
elseif prev == 'prioritized' then
  redis.call('ZREM', kPrioritized, jobId)
else
  redis.call('ZREM', groupWaitKey(gid), jobId)
end
pushReady(jobId, P.priority, false, gid)
return 1
