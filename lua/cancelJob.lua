--[[
  cancelJob: cancel a job from anywhere.

  A job that is not running is failed now (or removed): taken out of wait,
  prioritized, delayed or its group, `failedReason` = the reason, into
  `failed` (event `failed`). A running job is marked: `pqcx` = reason
  (`pqcxrm` = 1 to remove it instead of failing it) and its id added to the
  `pq:cancel` set, which the workers poll; the worker running it cancels the
  processor and fails (or removes) the job. Finished jobs are left alone.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, reason, remove.
  Returns 1 cancelled now, 2 cancellation requested (running), 0 already
  finished. A cancelled flow child counts as failed for its parent (its
  failure policy applies; removed: the parent stops waiting for it).
  Errors: -1 job missing (nothing written). A damaged job that is
  not running is failed all the same (includes/damage.lua); a running one
  whose key is not a hash makes the first write fail: nothing is written.
]]
--@include prelude
--@include flow
local jobId = P.id
local jobKey = base .. jobId
if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
if redis.call('ZSCORE', kCompleted, jobId) or redis.call('ZSCORE', kFailed, jobId) then
  return 0
end
if redis.call('LPOS', kActive, jobId) then
  redis.call('HSET', jobKey, 'pqcx', P.reason)
  if P.remove then redis.call('HSET', jobKey, 'pqcxrm', '1') end
  redis.call('SADD', base .. 'pq:cancel', jobId)
  return 2
end
local f, damage = readJob(jobKey, 'gid')
local gid = f and f.gid
redis.call('LREM', kWait, 0, jobId)
redis.call('LREM', kPaused, 0, jobId)
redis.call('ZREM', kPrioritized, jobId)
redis.call('ZREM', kDelayed, jobId)
redis.call('ZREM', kWaitingChildren, jobId)
if gid then
  redis.call('ZREM', groupWaitKey(gid), jobId)
  if redis.call('ZCARD', groupWaitKey(gid)) == 0 then redis.call('SREM', gk('all'), gid) end
  redis.call('ZREM', gk('delayed'), jobId)
end
if P.remove then
  flowDetachChild(jobKey)  -- a child: its parent stops waiting for it
  removeJobKeys(jobId)
  emit('removed', 'jobId', jobId, 'prev', 'cancelled')
  return 1
end
if damage then  -- failed all the same, the damage named with the reason
  failDamaged(jobId, P.reason .. ' (' .. damage .. ')', 'waiting')
  return 1
end
releaseDedup(jobKey, jobId)
redis.call('HSET', jobKey, 'failedReason', P.reason, 'finishedOn', nowS)
redis.call('ZADD', kFailed, nowS, jobId)
emit('failed', 'jobId', jobId, 'failedReason', P.reason, 'prev', 'waiting')
flowChildDone(jobKey, false, P.reason)  -- a child: its failure policy applies
return 1
