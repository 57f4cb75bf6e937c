--[[
  fence: the lock check of every script a worker writes through
  (moveToFinished, retryJob, updateJob with a token; extendLocks compares
  tokens the same way), so a worker that lost its lock cannot change the job.

  fence(jobKey, token) -> 0 | E_JOB_MISSING | E_LOCK_MISSING | E_LOCK_MISMATCH
    Reads only. A lock key of another type counts as a missing lock.
  leaveActive(jobId) -> true | false
    The job leaves `active` (false, and nothing written, when it is not
    there), its lock is deleted and its stalled mark cleared.
]]
local function fence(jobKey, token)
  if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
  local held = redis.pcall('GET', jobKey .. ':lock')
  if type(held) ~= 'string' then return E_LOCK_MISSING end
  if held ~= token then return E_LOCK_MISMATCH end
  return 0
end

local function leaveActive(jobId)
  if redis.call('LREM', kActive, -1, jobId) == 0 then return false end
  redis.call('DEL', base .. jobId .. ':lock')
  redis.call('SREM', kStalled, jobId)
  return true
end
