--[[
  reprocessJobs: move finished jobs (failed or completed) back to be
  processed: one job by id, or the oldest `count` of a state.

  Clears finishedOn, processedOn, returnvalue, failedReason, stacktrace and
  the deferred failure; keeps attemptsMade unless resetAttempts is set.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: state ("failed" | "completed"), id (optional), count,
    resetAttempts.
  Returns the number of jobs handled (a damaged job is not run again: it is
  failed alone with the damage as its reason, includes/damage.lua, and
  counts, so callers looping "while a full batch was handled" move on); with
  id, 1, or E_WRONG_STATE (-7), E_JOB_MISSING (-1) (nothing written), or
  E_JOB_CORRUPT (-8) when the job is damaged.
  Errors: with id, -1, -7 and -8 above.
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
local moved = 0
for _, jobId in ipairs(ids) do
  local jobKey = base .. jobId
  local f, damage = readJob(jobKey, 'priority', 'gid')
  if damage then
    -- Not run again: (re)failed alone with the damage as its reason, and
    -- scored now, so the next batch starts past it.
    redis.call('ZREM', key, jobId)
    failDamaged(jobId, damage, P.state)
  else
    redis.call('ZREM', key, jobId)
    redis.call('HDEL', jobKey, 'finishedOn', 'processedOn', 'returnvalue', 'failedReason',
               'stacktrace', 'defa', 'stc')
    if P.resetAttempts then redis.call('HSET', jobKey, 'atm', '0', 'ats', '0') end
    pushReady(jobId, tonumber(f.priority) or 0, false, f.gid)
    emit('waiting', 'jobId', jobId, 'prev', P.state)
    moved = moved + 1
  end
end
if P.id and moved == 0 then return E_JOB_CORRUPT end
return #ids
