--[[
  prelude: shared by every pyqueue script.

  KEYS (same order in every script; pyqueue/_keys.py QUEUE_SUFFIXES):
    1 wait  2 active  3 prioritized  4 pc  5 delayed  6 waiting-children
    7 completed  8 failed  9 stalled  10 stalled-check  11 limiter  12 meta
    13 events  14 id  15 marker  16 repeat  17 paused
  ARGV:
    1 base    "<prefix>:<queue>:", job keys are base .. jobId
    2 now     milliseconds, the caller's clock (Redis server time by default)
    3 params  msgpack map, the operation's parameters (see each script)

  Everything a script touches is either in KEYS or derived from base, so a
  hash tag in the prefix or queue name keeps a queue in one cluster slot.

  Error codes (all scripts; mapped to exceptions in pyqueue/_replies.py):
    -1 job missing  -2 lock missing  -3 not active  -4 queue busy
    -6 lock held by another token  -7 wrong state
    -8 job damaged: it was moved to failed alone (includes/damage.lua)
  Shared parts defined here: events (emit), wake-ups (markReady,
  markNextDelayed), ready/delayed moves (pushReady, addToDelayed), deletes
  (removeJobKeys, removeJobs, deleteBatch: the one batch delete), dedup
  release, retention, insertJob; and the includes groups and damage.
  A script reads and checks what it needs before its first write: Redis
  does not roll back a script that fails half-way.
]]
-- Per-call state: set by begin() at the start of every call (a script loaded
-- with EVAL calls it right after this prelude; a function of the library
-- calls it first thing). Everything else here is defined once.
local kWait, kActive, kPrioritized, kPc, kDelayed, kWaitingChildren
local kCompleted, kFailed, kStalled, kStalledCheck, kLimiter, kMeta, kEvents, kId
local kMarker, kRepeat, kPaused
local base, now, nowS, P
-- The events stream cap; callers that know it pass it as P.me (one HGET less).
local maxEvents
-- add_bulk sets deferMark and marks once at its end instead of once per job.
local deferMark, markPending = false, false
-- Whether any group key exists, and whether a fetch popped a prioritized job
-- (includes/fetch.lua).
local groupsInUse, poppedPrioritized = false, false
-- leaveActive's view of `active` (includes/fence.lua): its length and the
-- fetch count (pq:fseq), read once per call when first needed; and a batch
-- finish's walk (locateInActive), nil when there is none.
local activeLen, fetchSeq = nil, nil
local activeWalk = nil

-- The fetch count (pq:fseq) as this call last knew it, read once per call.
local function readFetchSeq()
  if not fetchSeq then fetchSeq = tonumber(redis.call('GET', base .. 'pq:fseq')) or 0 end
  return fetchSeq
end

-- An integer as the string a command argument needs. Redis 7.0 turns a Lua
-- number argument into text with printf("%.17g"), which costs more than the
-- command itself on the hot path (about 1,500 instructions a number); so
-- scripts pass strings: `nowS` for the clock, intStr(n) for counters.
-- Small values (batch indexes, attempt counters) come from a table.
local SMALL_INTS = {}
local function intStr(n)
  local s = SMALL_INTS[n]
  if s then return s end
  s = string.format('%d', n)
  if n >= 0 and n < 1024 then SMALL_INTS[n] = s end
  return s
end

local function begin(keys, argv)
  kWait, kActive, kPrioritized, kPc = keys[1], keys[2], keys[3], keys[4]
  kDelayed, kWaitingChildren, kCompleted, kFailed = keys[5], keys[6], keys[7], keys[8]
  kStalled, kStalledCheck, kLimiter, kMeta = keys[9], keys[10], keys[11], keys[12]
  kEvents, kId, kMarker, kRepeat, kPaused = keys[13], keys[14], keys[15], keys[16], keys[17]
  base = argv[1]
  now = tonumber(argv[2])
  nowS = argv[2]
  P = cmsgpack.unpack(argv[3])
  maxEvents = P.me and intStr(P.me)
  deferMark, markPending = false, false
  groupsInUse, poppedPrioritized = false, false
  activeLen, fetchSeq = nil, nil
  activeWalk = nil
end

-- Error codes (mapped to exceptions in pyqueue/_replies.py, nowhere else).
local E_JOB_MISSING = -1
local E_LOCK_MISSING = -2
local E_NOT_ACTIVE = -3
local E_QUEUE_BUSY = -4
local E_LOCK_MISMATCH = -6
local E_WRONG_STATE = -7
local E_JOB_CORRUPT = -8  -- the job's hash is damaged; it was moved to failed alone

local MANUAL_LIMIT = 9007199254740991
local PRIORITY_SHIFT = 4294967296

local function emit(name, ...)
  if not maxEvents then
    local m = tonumber(redis.call('HGET', kMeta, 'opts.maxLenEvents'))
    maxEvents = m and intStr(m) or '10000'
  end
  redis.call('XADD', kEvents, 'MAXLEN', '~', maxEvents, '*', 'event', name, ...)
end

local function isPaused()
  return redis.call('HEXISTS', kMeta, 'paused') == 1
end

-- Wake one blocked worker: jobs are ready now (deferred while deferMark is set).
local function markReady()
  if deferMark then
    markPending = true
    return
  end
  local m = redis.call('HMGET', kMeta, 'paused', 'concurrency')
  if m[1] then return end
  local concurrency = tonumber(m[2])
  if concurrency and redis.call('LLEN', kActive) >= concurrency then return end
  redis.call('ZADD', kMarker, '0', '0')
end

--@include groups

-- Ms when the next delayed job (plain or grouped) is due, or a rate-limited
-- group may run again; 0 when nothing is scheduled.
local function nextDue()
  local due = 0
  for _, key in ipairs({kDelayed, gk('delayed')}) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[2] then
      local ms = math.floor(tonumber(head[2]) / 4096)
      if due == 0 or ms < due then due = ms end
    end
  end
  local g = groupNextDue()
  if g > 0 and (due == 0 or g < due) then due = g end
  return due
end

-- Point marker member 1 at the next due time, so an idle worker knows when
-- to look again.
local function markNextDelayed()
  local due = nextDue()
  if due > 0 and not isPaused() then
    redis.call('ZADD', kMarker, due, '1')
  end
end

-- Score of a job due at dueMs: dueMs * 4096 + seq, seq one more than the
-- largest already used within that millisecond (saturating at 4095).
local function delayedScore(key, dueMs)
  local lo = dueMs * 4096
  local last = redis.call('ZREVRANGEBYSCORE', key, lo + 4095, lo, 'WITHSCORES', 'LIMIT', 0, 1)
  if last[2] then
    return math.min(tonumber(last[2]) - lo + 1, 4095) + lo
  end
  return lo
end

-- Make a job ready: its group's queue (gid), prioritized (priority > 0),
-- else the wait list. toFront puts it where workers take next (stalled or
-- rate-limited jobs).
local function pushReady(jobId, priority, toFront, gid)
  if gid then
    groupPush(gid, jobId, priority, toFront)
    return
  end
  if priority and priority > 0 then
    local seq = redis.call('INCR', kPc) % PRIORITY_SHIFT
    redis.call('ZADD', kPrioritized, priority * PRIORITY_SHIFT + seq, jobId)
  elseif toFront then
    redis.call('RPUSH', kWait, jobId)
  else
    redis.call('LPUSH', kWait, jobId)
  end
  markReady()
end

-- Delay a job until dueMs; grouped jobs wait in gr:delayed, where a BullMQ
-- worker (which knows nothing of groups) cannot promote them.
local function addToDelayed(jobId, dueMs, gid)
  local key = kDelayed
  if gid then key = gk('delayed') end
  redis.call('ZADD', key, delayedScore(key, dueMs), jobId)
  emit('delayed', 'jobId', jobId, 'delay', dueMs)
  markNextDelayed()
end

-- Delete a job's hash and sub-keys, and release its deduplication id. Safe
-- on a damaged job: a key of the wrong type is deleted like any other.
local function removeJobKeys(jobId)
  local jobKey = base .. jobId
  local deid = redis.pcall('HGET', jobKey, 'deid')
  if type(deid) == 'string' then
    local dk = base .. 'de:' .. deid
    if redis.pcall('GET', dk) == jobId then redis.call('DEL', dk) end
  end
  redis.call('DEL', jobKey, jobKey .. ':logs', jobKey .. ':lock', jobKey .. ':dependencies',
             jobKey .. ':processed', jobKey .. ':failed', jobKey .. ':unsuccessful')
end

-- The one batch delete: remove the jobs `ids` of zset `setKey`, with their
-- keys. `each(id)`, when given, runs first for every job (clean, drain and
-- obliterate pass flowDropChild: includes/flow.lua). Returns #ids.
local function removeJobs(setKey, ids, each)
  for _, id in ipairs(ids) do
    if each then each(id) end
    removeJobKeys(id)
  end
  if #ids > 0 then redis.call('ZREM', setKey, unpack(ids)) end
  return #ids
end

-- Delete up to `budget` jobs from a state with their keys: the oldest of a
-- list (its tail) or the lowest-scored of a zset (`each` as in removeJobs).
-- Returns how many.
local function deleteBatch(key, budget, isList, each)
  if budget <= 0 then return 0 end
  if isList then
    local ids = redis.call('LRANGE', key, -budget, -1)
    for _, id in ipairs(ids) do
      if each then each(id) end
      removeJobKeys(id)
    end
    if #ids > 0 then redis.call('LTRIM', key, 0, -#ids - 1) end
    return #ids
  end
  return removeJobs(key, redis.call('ZRANGE', key, 0, budget - 1), each)
end

-- A finished job no longer blocks its deduplication id, unless the id was
-- given a ttl (then it lives out its ttl).
local function releaseDedup(jobKey, jobId, deid)
  deid = deid or redis.pcall('HGET', jobKey, 'deid')
  if type(deid) == 'string' then
    local dk = base .. 'de:' .. deid
    if redis.pcall('GET', dk) == jobId and redis.call('PTTL', dk) == -1 then
      redis.call('DEL', dk)
    end
  end
end

-- Best-effort retention on a finished set: drop jobs older than ageMs, then
-- keep at most count; bounded to 1000 removals a call.
local function applyRetention(setKey, count, ageMs)
  if ageMs and ageMs > 0 then
    removeJobs(setKey, redis.call('ZRANGEBYSCORE', setKey, '-inf', now - ageMs, 'LIMIT', 0, 1000))
  end
  if count and count >= 0 then
    local excess = redis.call('ZCARD', setKey) - count
    if excess > 0 then
      removeJobs(setKey, redis.call('ZRANGE', setKey, 0, math.min(excess, 1000) - 1))
    end
  end
end

--@include damage

-- Write a new job's hash and make it delayed or ready, with its events.
-- j: {id, name, data, opts, delay, priority, lifo, gid, deid}
local function insertJob(j)
  if j.deid or j.gid then
    local fields = {'name', j.name, 'data', j.data, 'opts', j.opts, 'timestamp', nowS,
                    'delay', intStr(j.delay), 'priority', intStr(j.priority)}
    if j.deid then
      fields[#fields + 1] = 'deid'
      fields[#fields + 1] = j.deid
    end
    if j.gid then
      fields[#fields + 1] = 'gid'
      fields[#fields + 1] = j.gid
    end
    redis.call('HSET', base .. j.id, unpack(fields))
  else  -- most adds: the fields as arguments, no table to build and unpack
    redis.call('HSET', base .. j.id, 'name', j.name, 'data', j.data, 'opts', j.opts,
               'timestamp', nowS, 'delay', intStr(j.delay), 'priority', intStr(j.priority))
  end
  emit('added', 'jobId', j.id, 'name', j.name)
  if j.delay > 0 then
    addToDelayed(j.id, now + j.delay, j.gid)
  else
    pushReady(j.id, j.priority, j.lifo, j.gid)
    emit('waiting', 'jobId', j.id)
  end
end

--@begin
