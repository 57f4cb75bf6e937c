--[[
  fence: the lock check of every script a worker writes through
  (moveToFinished, retryJob, updateJob with a token; extendLocks compares
  tokens the same way), so a worker that lost its lock cannot change the job.

  fence(jobKey, token) -> 0 | E_JOB_MISSING | E_LOCK_MISSING | E_LOCK_MISMATCH
    Reads only. A lock key of another type counts as a missing lock.
  leaveActive(jobId, token, names...) -> fields, 0 | nil, error code
    The preamble of a worker's finish or retry: fence the job (as fence
    does, with the lock read first), read `names` and `name` of its hash
    (readHeldJob: checked before any write), take it out of
    `active` (E_NOT_ACTIVE, nothing written, when it is not there) with its
    lock and stalled mark. A damaged job is then failed alone
    (E_JOB_CORRUPT, includes/damage.lua).
]]
local function fence(jobKey, token)
  if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
  local held = redis.pcall('GET', jobKey .. ':lock')
  if type(held) ~= 'string' then return E_LOCK_MISSING end
  if held ~= token then return E_LOCK_MISMATCH end
  return 0
end

-- Which end of `active` to search for a job (LREM's count: 1 = from the
-- head, -1 = from the tail). Fetches push at the head, so `ahead`, the jobs
-- fetched after this one (at most the fetch count now minus the count its
-- token starts with, the count before the call that fetched it),
-- bounds how far it is from the head; the rest of the list is behind it.
-- Searching from the head when ahead < half the list never walks further
-- than the tail would. Finishes mostly meet the oldest jobs (tail), but with
-- many worker processes some process's jobs lag at the tail, and the LREM
-- walk (every entry compared as text) becomes the biggest cost of a finish.
-- Tokens without a count (other clients) search from the tail, as before,
-- and so does every finish while the list is short.
local function activeEnd(token)
  if not activeLen then activeLen = redis.call('LLEN', kActive) end
  if activeLen < 256 then return -1 end  -- a short walk either way: skip the sums
  local mine = tonumber(string.match(token, '^(%d+):'))  -- anchored: one try
  if not mine or mine > 4503599627370496 then return -1 end
  local ahead = readFetchSeq() - mine
  if ahead >= 0 and ahead * 2 < activeLen then return 1 end
  return -1
end

local function leaveActive(jobId, token, ...)
  local jobKey = base .. jobId
  -- The lock first: a held lock means the hash exists (they are deleted
  -- together), so the hot path needs no EXISTS; `name` (every job has one),
  -- read with the other fields, tells a hash deleted from outside.
  local held = redis.pcall('GET', jobKey .. ':lock')
  if held ~= token then
    if redis.call('EXISTS', jobKey) == 0 then return nil, E_JOB_MISSING end
    if type(held) ~= 'string' then return nil, E_LOCK_MISSING end
    return nil, E_LOCK_MISMATCH
  end
  local fields, damage = readHeldJob(jobKey, 'name', ...)
  if fields and not fields.name and redis.call('EXISTS', jobKey) == 0 then
    return nil, E_JOB_MISSING
  end
  if redis.call('LREM', kActive, activeEnd(token), jobId) == 0 then return nil, E_NOT_ACTIVE end
  activeLen = activeLen - 1
  redis.call('DEL', jobKey .. ':lock')
  redis.call('SREM', kStalled, jobId)
  if damage then
    local gid = redis.pcall('HGET', jobKey, 'gid')
    if type(gid) == 'string' then groupRelease(gid) end
    failDamaged(jobId, damage, 'active')
    return nil, E_JOB_CORRUPT
  end
  return fields, 0
end
