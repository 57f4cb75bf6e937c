--[[
  clean: remove jobs of one state whose timestamp is older than a cut-off.

  Finished sets are scored by finishedOn; other states are checked on the
  job's `timestamp`: jobs at or before the cut-off go (clean(0) removes a
  job created in the same millisecond). Locked active jobs are never
  removed, nor jobs whose timestamp is damaged (their age is unknown).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: state (completed, failed, delayed, prioritized, wait,
    active, paused), cutoff (ms; jobs at or before it are removed), limit (max removals, 0 = 1000
    per call).
  A removed child leaves its parent's dependencies (flowDropChild in
  includes/flow.lua: a parent left waiting for nothing is deleted when it
  is in this queue, moves on when it is in another).
  Returns the ids removed by this call.
  Errors: none. A job whose timestamp is damaged, or whose key is not a
  hash, is left where it is (its age is unknown); the others are removed.
]]
--@include prelude
--@include flow
local limit = P.limit
if limit <= 0 or limit > 1000 then limit = 1000 end
local removed = {}
local keyFor = {completed = kCompleted, failed = kFailed, delayed = kDelayed,
                prioritized = kPrioritized, wait = kWait, active = kActive, paused = kPaused}
local key = keyFor[P.state]

-- A job without a timestamp is old enough; a damaged one (timestamp not a
-- number, key not a hash) is left alone: clean removes by age, and its age
-- is unknown.
local function oldEnough(id)
  local ts = redis.pcall('HGET', base .. id, 'timestamp')
  if type(ts) == 'table' then return false end
  if not ts then return true end
  local ms = tonumber(ts)
  return ms ~= nil and ms <= P.cutoff
end

-- Delete a job taken out of its state (its parent first: flowDropChild).
local function drop(id)
  flowDropChild(id)
  removeJobKeys(id)
  removed[#removed + 1] = id
end

if P.state == 'completed' or P.state == 'failed' then
  removed = redis.call('ZRANGEBYSCORE', key, '-inf', P.cutoff, 'LIMIT', 0, limit)
  removeJobs(key, removed, flowDropChild)
elseif P.state == 'delayed' or P.state == 'prioritized' then
  local zsets = {key}
  if P.state == 'delayed' then zsets[2] = gk('delayed') end
  for _, zkey in ipairs(zsets) do
    for _, id in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
      if #removed >= limit then break end
      if oldEnough(id) then
        redis.call('ZREM', zkey, id); drop(id)
      end
    end
  end
else
  -- Oldest (the tail) first. A removed entry is overwritten with a marker no
  -- job id can be (ids hold no ':' nor NUL) and all go in one LREM at the
  -- end: one LREM per job would walk the whole list each time.
  local ids = redis.call('LRANGE', key, 0, -1)
  local gone = '\0pq:cleaned'
  for i = #ids, 1, -1 do
    if #removed >= limit then break end
    local id = ids[i]
    local locked = redis.call('EXISTS', base .. id .. ':lock') == 1
    if not locked and oldEnough(id) then
      redis.call('LSET', key, i - 1, gone); drop(id)
    end
  end
  if #removed > 0 then redis.call('LREM', key, 0, gone) end
end
if P.state == 'wait' then
  -- Grouped ready jobs count as waiting too.
  for _, gid in ipairs(redis.call('SMEMBERS', gk('all'))) do
    local gwait = groupWaitKey(gid)
    for _, id in ipairs(redis.call('ZRANGE', gwait, 0, -1)) do
      if #removed >= limit then break end
      if oldEnough(id) then
        redis.call('ZREM', gwait, id); drop(id)
      end
    end
    if redis.call('ZCARD', gwait) == 0 then redis.call('SREM', gk('all'), gid) end
  end
end
if #removed > 0 then emit('cleaned', 'count', #removed) end
return removed
