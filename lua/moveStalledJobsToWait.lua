--[[
  moveStalledJobsToWait: the stalled-job check, run by at most one worker per
  stalled interval (the stalled-check key is its mutex).

  Ids still in `stalled` since the previous pass whose lock is gone go back
  to be taken next; their stalled counter (stc) grows, and past maxStalled
  the job gets a deferred failure (defa) that the next worker to take it
  applies. Scheduler jobs (rjk set) are never failed for stalling. Then every
  active id is copied into `stalled` for the next pass.

  A stalled job whose hash is damaged (or gone) is moved to failed alone
  (includes/damage.lua) and listed in failedIds.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: maxStalled, intervalMs.
  Returns {stalledIds, failedIds}, or {} when another worker ran the check
  within the interval.
  Errors: none.
]]
--@include prelude
if not redis.call('SET', kStalledCheck, now, 'NX', 'PX', P.intervalMs) then
  return {}
end
local stalled, failed = {}, {}
for _, jobId in ipairs(redis.call('SMEMBERS', kStalled)) do
  local jobKey = base .. jobId
  -- Every lock has an expiry (PX): a lock key without one (-1), of any
  -- type, is damaged and holds the job no more than a missing one (-2).
  if redis.call('PTTL', jobKey .. ':lock') < 0 then
    -- Read (and check) the job before it leaves active.
    local f, damage = readJob(jobKey, 'stc', 'rjk', 'priority', 'gid')
    if redis.call('LREM', kActive, 1, jobId) > 0 then
      if damage then
        local gid = redis.pcall('HGET', jobKey, 'gid')
        if type(gid) == 'string' then groupRelease(gid) end
        failDamaged(jobId, damage, 'active')
        failed[#failed + 1] = jobId
      else
        local stc = redis.call('HINCRBY', jobKey, 'stc', 1)
        if stc > P.maxStalled and not f.rjk then
          redis.call('HSET', jobKey, 'defa', 'job stalled more than allowable limit')
          failed[#failed + 1] = jobId
        end
        if f.gid then groupRelease(f.gid) end
        pushReady(jobId, tonumber(f.priority) or 0, true, f.gid)
        emit('waiting', 'jobId', jobId, 'prev', 'active')
        emit('stalled', 'jobId', jobId)
        stalled[#stalled + 1] = jobId
      end
    end
  end
end
redis.call('DEL', kStalled)
local active = redis.call('LRANGE', kActive, 0, -1)
for i = 1, #active, 5000 do
  redis.call('SADD', kStalled, unpack(active, i, math.min(i + 4999, #active)))
end
return {stalled, failed}
