--[[
  moveToFinished: complete or finally fail active jobs (a batch: the worker
  sends its finishes in chunks of up to half its concurrency), then hand out
  the next jobs in the same call (fetch-next).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params:
    items    array of finishes, each a map:
      id, lockToken  the job and the token its lock must hold
      target         "completed" or "failed"
      value          completed: return value JSON; failed: the failure reason
      stacktrace     failed: JSON array of strings
      keepCount      retention: keep at most this many (-1 = all, 0 = remove now)
      keepAgeMs      retention: drop finished jobs older than this (0 = no limit)
      exhausted      failed: emit retries-exhausted (no attempts left)
      dl             failed for good: copy into the dead-letter queue, if the
                     queue has one (includes/deadletter.lua); the value is
                     the entry's kind (attempts-exhausted, unrecoverable, ...)
    (without items, the params themselves are the single finish)
    fetch    true = then hand out up to n jobs: token, lockMs, n, lmax, ldur, wname
    mdp      keep BullMQ's metrics with this many data points (includes/metrics.lua)
  Returns {codes, fetchReply}: codes[i] is 0 for a finished job or an error
  for item i (-1 job missing, -2 lock missing, -6 lock held by another
  token, -3 job not in active, -10 (completed only) the job has children
  that have not finished, -9 a child failed with fail_parent_on_failure:
  that job is left untouched; -8 the job's hash
  is damaged: it was moved to failed alone with the damage as its
  failedReason, see includes/damage.lua); fetchReply is includes/fetch.lua's
  reply ({} when fetch is false).
  Errors: per item only (above); the call itself has none.
]]
--@include prelude
--@include fence
--@include dedup
--@include fetch
--@include flow
--@include deadletter
--@include metrics
local function finishOne(item)
  local jobId = item.id
  local jobKey = base .. jobId
  if item.target == 'completed' then
    local refused = flowCanComplete(jobKey)  -- pending or failed children: -10 / -9
    if refused ~= 0 then return refused end
  end
  local owned, code = leaveActive(jobId, item.lockToken, 'deid', 'gid', 'pqcx', 'atm',
                                  'parentKey')
  if not owned then return code end

  if owned.pqcx then redis.call('SREM', base .. 'pq:cancel', jobId) end
  if owned.deid then
    releaseDedup(jobKey, jobId, owned.deid)
    startDeferredDuplicate(owned.deid)
  end
  if owned.gid then groupRelease(owned.gid) end

  -- atm was read (and checked: an integer) by leaveActive: set, not HINCRBY.
  local atm = (tonumber(owned.atm) or 0) + 1
  local target = kCompleted
  if item.target == 'completed' then
    redis.call('HSET', jobKey, 'returnvalue', item.value, 'finishedOn', nowS, 'atm', intStr(atm))
    emit('completed', 'jobId', jobId, 'returnvalue', item.value, 'prev', 'active')
  else
    target = kFailed
    redis.call('HSET', jobKey, 'failedReason', item.value, 'stacktrace', item.stacktrace,
               'finishedOn', nowS, 'atm', intStr(atm))
    redis.call('HDEL', jobKey, 'defa')
    emit('failed', 'jobId', jobId, 'failedReason', item.value, 'prev', 'active')
    if item.exhausted then
      emit('retries-exhausted', 'jobId', jobId, 'attemptsMade', atm)
    end
    if item.dl then deadLetter(jobId, item.dl, item.value, item.stacktrace, atm) end
  end

  if owned.parentKey then flowChildDone(jobKey, item.target == 'completed', item.value) end
  if item.keepCount == 0 then
    removeJobKeys(jobId)
  else
    redis.call('ZADD', target, nowS, jobId)
    applyRetention(target, item.keepCount, item.keepAgeMs)
  end
  if P.mdp then recordFinished(target == kCompleted, P.mdp) end
  return 0
end

local items = P.items or {P}
local codes = {}
local function finishAll()
  for i, item in ipairs(items) do codes[i] = finishOne(item) end
end
locateInActive(items)
if activeWalk then
  -- The jobs let go must leave `active` even if an item raises (a Redis
  -- error on a damaged key): the error goes on to the caller after that.
  local ok, err = pcall(finishAll)
  leaveActiveBatch()
  if not ok then error(err, 0) end
else
  finishAll()
end

-- A freed global-concurrency slot may let a waiting job start. (Without a
-- global concurrency, adds and fetches keep the marker up to date already.)
if redis.call('HEXISTS', kMeta, 'concurrency') == 1
    and redis.call('LLEN', kWait) + redis.call('ZCARD', kPrioritized) + groupReadyCount() > 0 then
  markReady()
end

if P.fetch then
  return {codes, fetchJobs()}
end
return {codes, {}}
