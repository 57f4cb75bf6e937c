--[[
  promote: make delayed jobs ready now: one job by id, or up to `batch`.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id (optional), batch.
  Returns the number promoted; with id, 1 or E_WRONG_STATE (-7) when the job
  is not delayed, E_JOB_MISSING (-1) when it does not exist.
]]
--@include prelude
local ids
if P.id then
  if redis.call('EXISTS', base .. P.id) == 0 then return E_JOB_MISSING end
  if not redis.call('ZSCORE', kDelayed, P.id) then return E_WRONG_STATE end
  ids = {P.id}
else
  ids = redis.call('ZRANGE', kDelayed, 0, P.batch - 1)
end
for _, jobId in ipairs(ids) do
  local jobKey = base .. jobId
  redis.call('ZREM', kDelayed, jobId)
  redis.call('HSET', jobKey, 'delay', 0)
  local priority = tonumber(redis.call('HGET', jobKey, 'priority') or '0')
  pushReady(jobId, priority, false)
  emit('waiting', 'jobId', jobId, 'prev', 'delayed')
end
return #ids
