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
  locateInActive(items) / leaveActiveBatch()
    A batch finish on a long `active` list: one walk finds the batch's jobs,
    leaveActive notes those it owns, and they leave `active` together after
    the batch (see below).
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

-- A batch finish's walk. One LREM per job compares every entry between the
-- job and the end it searches from (Redis 7.0 turns each numeric id into text
-- to compare), and a worker's batch is usually one run of neighbours (it
-- fetched them in one call and finishes them in order). So with 4 or more
-- items on a list of 256 or more, LRANGE reads `active` in chunks from the
-- end most of the batch is nearer to (activeEnd) until the batch's jobs
-- expected at that end are found, or half the list is read. leaveActive
-- only notes a found job it owns; after the batch, leaveActiveBatch takes
-- them all out at once: it cuts the part of the list up to the farthest of
-- them (LTRIM) and pushes back the rest of that part, in order. That is
-- chosen when it is cheaper than one LREM each (the sum of their distances
-- against about 2.4 times the part's length); else one LREM each.
-- The distances stay right until then: nothing in a finish pushes to
-- `active`, and a job that was not found lies beyond the part read, so
-- taking it out with LREM on the way does not move the found ones. A job
-- found but not owned (lock check) keeps its entry. moveToFinished calls
-- leaveActiveBatch even when an item raises.
local ACTIVE_CHUNK = 128

local function locateInActive(items)
  if #items < 4 then return end
  if not activeLen then activeLen = redis.call('LLEN', kActive) end
  if activeLen < 256 then return end
  local want, count, atHead = {}, 0, 0
  for _, item in ipairs(items) do
    local id = item.id
    if want[id] == nil and type(item.lockToken) == 'string' then
      local dir = activeEnd(item.lockToken)
      want[id] = dir
      count = count + 1
      if dir == 1 then atHead = atHead + 1 end
    end
  end
  local dir = -1
  if atHead * 2 > count then dir = 1 end
  local pending = 0
  for _, d in pairs(want) do
    if d == dir then pending = pending + 1 end
  end
  local read, found, limit = {}, {}, math.floor((activeLen + 1) / 2)
  local n = 0  -- entries read so far; read[k] is the k-th from this end
  while pending > 0 and n < limit do
    local ids
    if dir == 1 then
      ids = redis.call('LRANGE', kActive, intStr(n), intStr(n + ACTIVE_CHUNK - 1))
    else
      ids = redis.call('LRANGE', kActive, intStr(-(n + ACTIVE_CHUNK)), intStr(-(n + 1)))
    end
    local got = #ids
    for k = 1, got do
      local id = ids[k]
      if dir == -1 then id = ids[got - k + 1] end
      read[n + k] = id
      local d = want[id]
      if d ~= nil and found[id] == nil then
        found[id] = n + k - 1
        if d == dir then pending = pending - 1 end
      end
    end
    n = n + got
    if got < ACTIVE_CHUNK then break end
  end
  -- read[k]: the k-th id from this end; found: the batch's jobs among them
  -- (id -> distance from the end); drops: the distances of those let go.
  activeWalk = {dir = dir, read = read, found = found, drops = {}}
end

-- Take out the found jobs leaveActive let go (see above).
local function leaveActiveBatch()
  local walk = activeWalk
  if not walk then return end
  activeWalk = nil
  local drops, read, dir = walk.drops, walk.read, walk.dir
  if #drops == 0 then return end
  local far, sum = 0, 0
  for _, d in ipairs(drops) do
    sum = sum + d
    if d > far then far = d end
  end
  if sum * 5 <= (far + 1) * 12 then
    for _, d in ipairs(drops) do redis.call('LREM', kActive, intStr(dir), read[d + 1]) end
    return
  end
  local gone = {}
  for _, d in ipairs(drops) do gone[d] = true end
  local keep, kept = {}, 0
  for d = far, 0, -1 do  -- the farthest first: pushing them back restores the order
    if not gone[d] then
      kept = kept + 1
      keep[kept] = read[d + 1]
    end
  end
  local push = 'RPUSH'
  if dir == 1 then
    redis.call('LTRIM', kActive, intStr(far + 1), '-1')
    push = 'LPUSH'
  else
    redis.call('LTRIM', kActive, '0', intStr(-(far + 2)))
  end
  for i = 1, kept, 500 do
    redis.call(push, kActive, unpack(keep, i, math.min(i + 499, kept)))
  end
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
  local at = activeWalk and activeWalk.found[jobId]
  if at then
    activeWalk.found[jobId] = nil
    activeWalk.drops[#activeWalk.drops + 1] = at
  elseif redis.call('LREM', kActive, activeEnd(token), jobId) == 0 then
    return nil, E_NOT_ACTIVE
  end
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
