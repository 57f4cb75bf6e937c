--[[
  fetch: promote due delayed jobs and hand out ready jobs (moveToActive's
  core, shared with moveToFinished's fetch-next).

  Reads from P: token (lock token prefix), lockMs, n (max jobs to take),
  lmax/ldur (the worker's limiter, optional), wname (worker name, optional).
  A damaged job (includes/damage.lua) met while promoting or taking jobs is
  moved to failed alone; it is not handed out and the others are. Taking a
  job checks what running it needs (a hash, integer attempt counters).
  Returns {status, number, job...}:
    status 0: number = ms until the next delayed job is due (0 = none known),
      followed by the jobs taken, each {jobId, lockToken, field, value, ...};
    status 1: rate limited, number = ms until the limit resets;
    status 2: paused;  status 3: at global concurrency.
]]
-- groupsInUse (prelude's per-call state): whether any group key exists, set
-- by fetchJobs with one EXISTS instead of three lookups when the queue uses
-- no groups.

local function promoteDueDelayed()
  local keys = {kDelayed}
  if groupsInUse then keys[2] = gk('delayed') end
  for _, key in ipairs(keys) do
    local due = redis.call('ZRANGEBYSCORE', key, 0, (now + 1) * 4096 - 1, 'LIMIT', 0, 1000)
    if #due > 0 then
      redis.call('ZREM', key, unpack(due))
      for _, id in ipairs(due) do
        local f, damage = readJob(base .. id, 'priority', 'gid')
        if damage then
          failDamaged(id, damage, 'delayed')  -- alone: the other due jobs move on
        else
          local priority = tonumber(f.priority) or 0
          if f.gid then
            groupPush(f.gid, id, priority, false)
          elseif priority > 0 then
            local seq = redis.call('INCR', kPc) % PRIORITY_SHIFT
            redis.call('ZADD', kPrioritized, priority * PRIORITY_SHIFT + seq, id)
          else
            redis.call('LPUSH', kWait, id)
          end
          redis.call('HSET', base .. id, 'delay', '0')
          emit('waiting', 'jobId', id, 'prev', 'delayed')
        end
      end
    end
  end
  if groupsInUse then groupPromoteLimited() end
end

-- Next ready job id: ungrouped (wait, then prioritized) and grouped jobs
-- take turns when both are ready, so neither can starve the other.
local function takeNext()
  local groupsReady = groupsInUse and groupReadyCount() > 0
  local turn = nil
  if groupsReady then
    turn = redis.call('GET', gk('turn'))
    if turn == 'g' then
      local jobId = groupTake()
      if jobId then
        redis.call('SET', gk('turn'), 'u')
        redis.call('LPUSH', kActive, jobId)
        return jobId
      end
    end
  end
  local jobId = redis.call('RPOPLPUSH', kWait, kActive)
  if not jobId then
    local popped = redis.call('ZPOPMIN', kPrioritized)
    if popped[1] then
      jobId = popped[1]
      poppedPrioritized = true
      redis.call('LPUSH', kActive, jobId)
    end
  end
  if jobId then
    if groupsReady then redis.call('SET', gk('turn'), 'g') end
    return jobId
  end
  if groupsReady and turn ~= 'g' then
    jobId = groupTake()
    if jobId then
      redis.call('LPUSH', kActive, jobId)
      return jobId
    end
  end
  return nil
end

local function fetchJobs()
  groupsInUse = redis.call('EXISTS', gk('ready'), gk('delayed'), gk('limited')) > 0
  promoteDueDelayed()

  -- Rate limit: the queue's global limit (meta) wins over the worker's own.
  local meta = redis.call('HMGET', kMeta, 'max', 'duration', 'paused', 'concurrency')
  local lmax, ldur = tonumber(meta[1] or P.lmax), tonumber(meta[2] or P.ldur)
  if not ldur then lmax = nil end
  local used = tonumber(redis.pcall('GET', kLimiter)) or 0
  if used >= MANUAL_LIMIT or (lmax and used >= lmax) then
    local ttl = redis.call('PTTL', kLimiter)
    if ttl > 0 then return {1, ttl} end
    redis.call('DEL', kLimiter)
    used = 0
  end
  if meta[3] then return {2, 0} end
  local concurrency = tonumber(meta[4])

  local reply = {0, 0}
  local lockMs = intStr(P.lockMs)
  local n = tonumber(P.n or 1)
  local taken = 0
  local seqS = nil  -- the tokens' start: '<fetch count>:<P.token>:'
  while taken < n do
    if lmax and used >= lmax then break end
    if concurrency and redis.call('LLEN', kActive) >= concurrency then
      if taken == 0 then return {3, 0} end
      break
    end
    local jobId = takeNext()
    if not jobId then break end
    local jobKey = base .. jobId
    local fields = redis.pcall('HGETALL', jobKey)
    local damage, ats
    if fields.err then
      damage = 'job hash corrupt: the key holds a ' .. redis.call('TYPE', jobKey).ok ..
        ', not a hash'
    elseif #fields == 0 then
      damage = 'job hash missing: the job was deleted outside pyqueue'
    else
      damage, ats = hashDamage(fields)
    end
    if damage then
      -- Failed alone, before anything is written on it; the loop goes on.
      redis.call('LREM', kActive, 1, jobId)
      local gid = not fields.err and redis.call('HGET', jobKey, 'gid')
      if gid then groupRelease(gid) end
      failDamaged(jobId, damage, 'waiting')
    else
      if lmax then
        used = redis.call('INCR', kLimiter)
        if used == 1 then redis.call('PEXPIRE', kLimiter, ldur) end
      end
      -- The token starts with the fetch count (pq:fseq) before this call,
      -- which the job's finish uses to search `active` from the nearer end.
      if not seqS then
        seqS = intStr(readFetchSeq()) .. ':' .. P.token .. ':'
      end
      local token = seqS .. intStr(taken)
      redis.call('SET', jobKey .. ':lock', token, 'PX', lockMs)
      ats = ats + 1  -- read and checked above: set, not HINCRBY
      if P.wname then
        redis.call('HSET', jobKey, 'processedOn', nowS, 'ats', intStr(ats), 'pb', P.wname)
      else
        redis.call('HSET', jobKey, 'processedOn', nowS, 'ats', intStr(ats))
      end
      emit('active', 'jobId', jobId, 'prev', 'waiting')
      taken = taken + 1
      -- The hash as it is now: later pairs override earlier ones.
      fields[#fields + 1] = 'ats'
      fields[#fields + 1] = ats
      fields[#fields + 1] = 'processedOn'
      fields[#fields + 1] = now
      if P.wname then
        fields[#fields + 1] = 'pb'
        fields[#fields + 1] = P.wname
      end
      reply[#reply + 1] = {jobId, token, fields}
    end
  end
  if taken > 0 then
    fetchSeq = fetchSeq + taken
    redis.call('SET', base .. 'pq:fseq', intStr(fetchSeq))
  end
  activeLen = nil  -- jobs went into `active`: count again when needed
  if poppedPrioritized and redis.call('ZCARD', kPrioritized) == 0 then
    redis.call('DEL', kPc)
  end

  if taken > 0 then
    if redis.call('LLEN', kWait) > 0 or redis.call('ZCARD', kPrioritized) > 0
        or (groupsInUse and groupReadyCount() > 0) then
      -- More is ready: wake another idle worker (not paused: checked above).
      if not concurrency or redis.call('LLEN', kActive) < concurrency then
        redis.call('ZADD', kMarker, '0', '0')
      end
    else
      emit('drained')
    end
  else
    reply[2] = nextDue()  -- only an idle worker needs to know
  end
  return reply
end
