--[[
  moveToFinished: complete or finally fail an active job, then optionally
  take the next jobs in the same call (fetch-next).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params:
    id, lockToken  the job and the token its lock must hold
    target         "completed" or "failed"
    value          completed: return value JSON; failed: the failure reason
    stacktrace     failed: JSON array of strings
    keepCount      retention: keep at most this many (-1 = all, 0 = remove now)
    keepAgeMs      retention: drop finished jobs older than this (0 = no limit)
    exhausted      failed: emit retries-exhausted (no attempts left)
    fetch          true = also hand out jobs: token, lockMs, n, lmax, ldur, wname
  Returns {0, fetchReply} (fetchReply is {} when fetch is false).
  Errors: -1 job missing, -2 lock missing, -6 lock held by another token,
          -3 job not in active.
]]
--@include prelude
--@include fetch
local jobId = P.id
local jobKey = base .. jobId
if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
local lockErr = checkLock(jobKey, P.lockToken)
if lockErr ~= 0 then return lockErr end
if redis.call('LREM', kActive, -1, jobId) == 0 then return E_NOT_ACTIVE end

redis.call('DEL', jobKey .. ':lock')
redis.call('SREM', kStalled, jobId)
redis.call('SREM', base .. 'pq:cancel', jobId)
local owned = redis.call('HMGET', jobKey, 'deid', 'gid')
if owned[1] then
  releaseDedup(jobKey, jobId, owned[1])
  startDeferredDuplicate(owned[1])
end
local gid = owned[2]
if gid then groupRelease(gid) end

local atm = redis.call('HINCRBY', jobKey, 'atm', 1)
local target = kCompleted
if P.target == 'completed' then
  redis.call('HSET', jobKey, 'returnvalue', P.value, 'finishedOn', now)
  emit('completed', 'jobId', jobId, 'returnvalue', P.value, 'prev', 'active')
else
  target = kFailed
  redis.call('HSET', jobKey, 'failedReason', P.value, 'stacktrace', P.stacktrace,
             'finishedOn', now)
  redis.call('HDEL', jobKey, 'defa')
  emit('failed', 'jobId', jobId, 'failedReason', P.value, 'prev', 'active')
  if P.exhausted then
    emit('retries-exhausted', 'jobId', jobId, 'attemptsMade', atm)
  end
end

if P.keepCount == 0 then
  removeJobKeys(jobId)
else
  redis.call('ZADD', target, now, jobId)
  applyRetention(target, P.keepCount, P.keepAgeMs)
end

-- A freed global-concurrency slot may let a waiting job start.
if redis.call('LLEN', kWait) + redis.call('ZCARD', kPrioritized) + groupReadyCount() > 0 then
  markReady()
end

if P.fetch then
  return {0, fetchJobs()}
end
return {0, {}}
