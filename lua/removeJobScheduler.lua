--[[
  removeJobScheduler: delete a scheduler and its pending iteration (if it
  has not started; a running iteration finishes, and creates no next one).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id.
  Returns 1 when the scheduler existed, else 0.
  Errors: none.
]]
--@include prelude
--@include scheduler
local score = redis.call('ZSCORE', kRepeat, P.id)
if not score then
  return redis.call('DEL', schedulerKey(P.id))
end
local removed, jobId, prev = removePendingIteration(P.id, score)
if removed then emit('removed', 'jobId', jobId, 'prev', prev) end
redis.call('ZREM', kRepeat, P.id)
redis.call('DEL', schedulerKey(P.id))
return 1
