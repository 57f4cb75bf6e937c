--[[
  reprocessJobs: move finished jobs (failed or completed) back to be
  processed: one job by id, or the oldest `count` of a state.

  Clears finishedOn, processedOn, returnvalue, failedReason, stacktrace and
  the deferred failure; keeps attemptsMade unless resetAttempts is set.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: state ("failed" | "completed"), id (optional), count,
    resetAttempts.
  Returns the number of jobs moved; with id, 1 or E_WRONG_STATE (-7), or
  E_JOB_MISSING (-1).
]]
--@include prelude
local key = kFailed
if P.state == 'completed' then key = kCompleted end
local ids
if P.id then
  if redis.call('EXISTS', base .. P.id) == 0 then return E_JOB_MISSING end
  if not redis.call('ZSCORE', key, P.id) then return E_WRONG_STATE end
  ids = {P.id}
else
  ids = redis.call('ZRANGE', key, 0, P.count - 1)
end
for _, jobId in ipairs(ids) do
  local jobKey = base .. jobId
  redis.call('ZREM', key, jobId)
  redis.call('HDEL', jobKey, 'finishedOn', 'processedOn', 'returnvalue', 'failedReason',
             'stacktrace', 'defa', 'stc')
  if P.resetAttempts then redis.call('HSET', jobKey, 'atm', 0, 'ats', 0) end
  local f = redis.call('HMGET', jobKey, 'priority', 'gid')
  pushReady(jobId, tonumber(f[1] or '0'), false, f[2])
  emit('waiting', 'jobId', jobId, 'prev', P.state)
end
return #ids
