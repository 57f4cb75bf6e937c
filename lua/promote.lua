--[[
  promote: make delayed jobs ready now: one job by id, or up to `batch`.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id (optional), batch.
  Returns the number of delayed jobs handled (a damaged one is moved to
  failed alone, includes/damage.lua, and counts); with id, 1, or
  E_WRONG_STATE (-7) when the job is not delayed, E_JOB_MISSING (-1) when it
  does not exist (both: nothing written), E_JOB_CORRUPT (-8) when it is
  damaged (then failed alone).
  Errors: with id, -1, -7 and -8 above.
]]
--@include prelude
local ids
if P.id then
  if redis.call('EXISTS', base .. P.id) == 0 then return E_JOB_MISSING end
  if not redis.call('ZSCORE', kDelayed, P.id) and not redis.call('ZSCORE', gk('delayed'), P.id) then
    return E_WRONG_STATE
  end
  ids = {P.id}
else
  ids = redis.call('ZRANGE', kDelayed, 0, P.batch - 1)
  if #ids < P.batch then
    for _, id in ipairs(redis.call('ZRANGE', gk('delayed'), 0, P.batch - #ids - 1)) do
      ids[#ids + 1] = id
    end
  end
end
for _, jobId in ipairs(ids) do
  local jobKey = base .. jobId
  local f, damage = readJob(jobKey, 'priority', 'gid')
  redis.call('ZREM', kDelayed, jobId)
  redis.call('ZREM', gk('delayed'), jobId)
  if damage then
    failDamaged(jobId, damage, 'delayed')  -- alone: the others are promoted
    if P.id then return E_JOB_CORRUPT end
  else
    redis.call('HSET', jobKey, 'delay', '0')
    pushReady(jobId, tonumber(f.priority) or 0, false, f.gid)
    emit('waiting', 'jobId', jobId, 'prev', 'delayed')
  end
end
return #ids
