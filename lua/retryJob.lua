--[[
  retryJob: take an active job out of active without finishing it: a retry
  after a failed attempt (to wait, or to delayed for a backoff), a
  DelayedError, a rate-limited job, or a job released at shutdown.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params:
    id, lockToken  the job and the token its lock must hold
    dueMs          > 0: move to delayed until then; 0: back to ready now
    front          true: ready at the front (taken next): stalls, rate limits
    countAttempt   true: this attempt counts (atm + 1); false for rate limits,
                   DelayedError and shutdown hand-backs
    reason, stacktrace   the failed attempt's reason and trace (optional)
    undoStart      true: this attempt did not count as started (ats - 1)
  Returns 0.
  Errors: -1 job missing, -2 lock missing, -6 other token, -3 not active
  (fencing, includes/fence.lua: nothing written); -8 the job's hash is
  damaged: it was moved to failed alone (includes/damage.lua).
]]
--@include prelude
--@include fence
local jobId = P.id
local jobKey = base .. jobId
local f, code = leaveActive(jobId, P.lockToken, 'priority', 'gid', 'atm', 'ats')
if not f then return code end

-- A cancelled job that is handed back (shutdown) loses its cancellation:
-- it was never started on purpose, and a new worker runs it afresh.
redis.call('SREM', base .. 'pq:cancel', jobId)
if P.countAttempt then redis.call('HINCRBY', jobKey, 'atm', 1) end
if P.reason then
  redis.call('HSET', jobKey, 'failedReason', P.reason, 'stacktrace', P.stacktrace)
end
if P.undoStart then redis.call('HINCRBY', jobKey, 'ats', -1) end
local gid = f.gid
if gid then groupRelease(gid) end

if P.dueMs > 0 then
  redis.call('HSET', jobKey, 'delay', P.dueMs - now)
  addToDelayed(jobId, P.dueMs, gid)
else
  pushReady(jobId, tonumber(f.priority) or 0, P.front, gid)
  emit('waiting', 'jobId', jobId, 'prev', 'active')
end
return 0
