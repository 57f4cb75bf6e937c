--[[
  flow: parents and children (BullMQ's flows), across queues of one prefix.

  A child's hash holds `parentKey` ("<prefix>:<queue>:<id>" of its parent)
  and `parent` (JSON {id, queueKey, fpof|cpof|idof|rdof}); the parent waits
  in its queue's `waiting-children` zset while its `:dependencies` set holds
  child keys. A completed child's return value goes to the parent's
  `:processed` hash; failed children, by the child's policy, to `:failed`
  (hash, ignored failures) or `:unsuccessful` (zset, fail_parent_on_failure).

  A parent may live in another queue than the script's own: its keys are
  derived from its queue base ("<prefix>:<queue>:"), so on Redis Cluster a
  flow across queues needs the hash tag in the prefix ({bull}).

  Only functions are defined here (the script's per-call values are read
  inside them):
  qEmit(qb, name, ...)          an event on queue qb's stream (its own cap)
  qPushReady(qb, id, priority, lifo)   wait / prioritized + marker + `waiting`
  qDelay(qb, id, dueMs)         delayed + marker + `delayed`
  inQueue(qb, fn, ...)          fn(...) with prelude's per-call queue state set to
                                queue qb (its pushReady, addToDelayed, emit...)
  qReady(qb, id, priority, lifo, gid, prev)   a job made ready (its group, if any)
  qDelayed(qb, id, dueMs, gid)  a job delayed (a grouped one in gr:delayed)
  parentJson(id, queueKey, policy) the child's `parent` field (JSON text)
  withParentOpt(opts, id, queueKey)  opts JSON text with "parent" added
  flowReadParent(jobKey)        -> parentKey, parentId, parentQueueBase | nil
  flowCanComplete(jobKey)       -> 0 | E_PENDING_DEPS | E_FAILED_CHILDREN (reads only)
  flowChildDone(jobKey, completed, value)  a child finished: update its parent
  flowDetachChild(jobKey)       a child is removed: its parent stops waiting for it
    (both contain a damaged parent's errors: the child's own move stands)
  flowDropChild(id)             a job of this queue is deleted by clean, drain or
    obliterate (BullMQ's "hard" removal): see the function
]]

-- Error codes of flows (mapped in pyqueue/_replies.py; the others are in prelude).
local E_PARENT_MISSING = -5  -- the parent named by an add does not exist
local E_FAILED_CHILDREN = -9  -- a child failed with fail_parent_on_failure
local E_PENDING_DEPS = -10  -- the job still has children that have not finished
local E_FLOW_ID_TAKEN = -11  -- a child's custom id is taken (nothing was written)

local function qEmit(qb, name, ...)
  local cap = tonumber(redis.call('HGET', qb .. 'meta', 'opts.maxLenEvents')) or 10000
  redis.call('XADD', qb .. 'events', 'MAXLEN', '~', cap, '*', 'event', name, ...)
end

-- Wake a worker of queue qb unless it is paused or at its global concurrency.
local function qMarkReady(qb)
  local m = redis.call('HMGET', qb .. 'meta', 'paused', 'concurrency')
  if m[1] then return end
  local concurrency = tonumber(m[2])
  if concurrency and redis.call('LLEN', qb .. 'active') >= concurrency then return end
  redis.call('ZADD', qb .. 'marker', '0', '0')
end

local function qPushReady(qb, id, priority, lifo, prev)
  if priority and priority > 0 then
    local seq = redis.call('INCR', qb .. 'pc') % PRIORITY_SHIFT
    redis.call('ZADD', qb .. 'prioritized', priority * PRIORITY_SHIFT + seq, id)
  elseif lifo then
    redis.call('RPUSH', qb .. 'wait', id)
  else
    redis.call('LPUSH', qb .. 'wait', id)
  end
  qMarkReady(qb)
  if prev then
    qEmit(qb, 'waiting', 'jobId', id, 'prev', prev)
  else
    qEmit(qb, 'waiting', 'jobId', id)
  end
end

local function qDelay(qb, id, dueMs)
  local key = qb .. 'delayed'
  redis.call('ZADD', key, delayedScore(key, dueMs), id)
  qEmit(qb, 'delayed', 'jobId', id, 'delay', dueMs)
  if redis.call('HEXISTS', qb .. 'meta', 'paused') == 0 then
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    redis.call('ZADD', qb .. 'marker', math.floor(tonumber(head[2]) / 4096), '1')
  end
end

-- Prelude's per-call queue state (KEYS, base, events cap) is the script's
-- queue's; inQueue points it at queue qb for the length of fn, so the
-- prelude's and groups' functions (pushReady, addToDelayed, emit) work on a
-- job of another queue of the flow. Keys follow KEYS' order (prelude).
local SUFFIXES = {'wait', 'active', 'prioritized', 'pc', 'delayed', 'waiting-children',
                  'completed', 'failed', 'stalled', 'stalled-check', 'limiter', 'meta',
                  'events', 'id', 'marker', 'repeat', 'paused'}

local function inQueue(qb, fn, ...)
  if qb == base then return fn(...) end
  local saved = {kWait, kActive, kPrioritized, kPc, kDelayed, kWaitingChildren, kCompleted,
                 kFailed, kStalled, kStalledCheck, kLimiter, kMeta, kEvents, kId, kMarker,
                 kRepeat, kPaused}
  local savedBase, savedMax, savedDefer = base, maxEvents, deferMark
  local keys = {}
  for i, suffix in ipairs(SUFFIXES) do keys[i] = qb .. suffix end
  local function set(k, b, m, d)
    kWait, kActive, kPrioritized, kPc = k[1], k[2], k[3], k[4]
    kDelayed, kWaitingChildren, kCompleted, kFailed = k[5], k[6], k[7], k[8]
    kStalled, kStalledCheck, kLimiter, kMeta = k[9], k[10], k[11], k[12]
    kEvents, kId, kMarker, kRepeat, kPaused = k[13], k[14], k[15], k[16], k[17]
    base, maxEvents, deferMark = b, m, d
  end
  set(keys, qb, nil, false)
  local ok, result = pcall(fn, ...)
  set(saved, savedBase, savedMax, savedDefer)
  if not ok then error(result, 0) end
  return result
end

local function readyInQueue(id, priority, lifo, gid, prev)
  pushReady(id, priority, lifo, gid)
  if prev then
    emit('waiting', 'jobId', id, 'prev', prev)
  else
    emit('waiting', 'jobId', id)
  end
end

-- A job of queue qb becomes ready: in its group when it has one (the
-- group's limits and round-robin apply), else as qPushReady.
local function qReady(qb, id, priority, lifo, gid, prev)
  if gid then
    inQueue(qb, readyInQueue, id, priority, lifo, gid, prev)
  else
    qPushReady(qb, id, priority, lifo, prev)
  end
end

local function qDelayed(qb, id, dueMs, gid)
  if gid then
    inQueue(qb, addToDelayed, id, dueMs, gid)
  else
    qDelay(qb, id, dueMs)
  end
end

local POLICIES = {'fpof', 'cpof', 'idof', 'rdof'}

local function parentJson(id, queueKey, policy)
  local text = '{"id":' .. cjson.encode(id) .. ',"queueKey":' .. cjson.encode(queueKey)
  if policy then text = text .. ',"' .. policy .. '":true' end
  return text .. '}'
end

-- BullMQ keeps {id, queue: queueKey} under opts.parent of every child.
local function withParentOpt(opts, id, queueKey)
  local entry = '"parent":{"id":' .. cjson.encode(id) .. ',"queue":' ..
    cjson.encode(queueKey) .. '}'
  if opts == '{}' then return '{' .. entry .. '}' end
  return '{' .. entry .. ',' .. string.sub(opts, 2)
end

-- The parent of the job at jobKey: its key, id and queue base, and the
-- child's policy (nil when the job has no parent).
local function flowReadParent(jobKey)
  local f = redis.pcall('HMGET', jobKey, 'parentKey', 'parent')
  if f.err or not f[1] then return nil end
  local parentKey, parentId, queueKey, policy = f[1], nil, nil, nil
  if f[2] then
    local ok, parsed = pcall(cjson.decode, f[2])
    if ok and type(parsed) == 'table' then
      parentId, queueKey = parsed.id, parsed.queueKey
      for _, name in ipairs(POLICIES) do
        if parsed[name] and not policy then policy = name end
      end
    end
  end
  if type(parentId) ~= 'string' or type(queueKey) ~= 'string' then
    queueKey, parentId = string.match(parentKey, '^(.*):([^:]+)$')
    if not queueKey then return nil end
  end
  return parentKey, parentId, queueKey .. ':', policy
end

-- Whether the job at jobKey may complete: none of its children is pending,
-- none failed with fail_parent_on_failure.
local function flowCanComplete(jobKey)
  if redis.call('EXISTS', jobKey .. ':dependencies', jobKey .. ':unsuccessful') == 0 then
    return 0  -- the common case: one lookup
  end
  local pending = redis.pcall('SCARD', jobKey .. ':dependencies')
  if type(pending) == 'number' and pending > 0 then return E_PENDING_DEPS end
  local failed = redis.pcall('ZCARD', jobKey .. ':unsuccessful')
  if type(failed) == 'number' and failed > 0 then return E_FAILED_CHILDREN end
  return 0
end

-- Move a parent from waiting-children (or delayed) to ready or delayed by its
-- own options, with the `waiting` (or `delayed`) event.
local function flowReleaseParent(pqb, parentId)
  local removed = redis.call('ZREM', pqb .. 'waiting-children', parentId)
  if removed == 0 then return false end
  local f = redis.call('HMGET', pqb .. parentId, 'priority', 'delay', 'gid')
  local priority, delay = tonumber(f[1]) or 0, tonumber(f[2]) or 0
  local gid = f[3] or nil
  if delay > 0 then
    qDelayed(pqb, parentId, now + delay, gid)
  else
    -- As BullMQ: a released parent goes where workers take next (RPUSH).
    qReady(pqb, parentId, priority, true, gid, 'waiting-children')
  end
  return true
end

-- fail_parent_on_failure: the parent leaves waiting-children (or delayed)
-- with a deferred failure, so the worker that takes it fails it (and its
-- own parent's policy applies in turn: the failure cascades upward).
local function flowFailParent(pqb, parentKey, parentId, childKey)
  if redis.call('EXISTS', parentKey) == 0 then return end
  local reason = 'child ' .. childKey .. ' failed'
  if redis.call('ZSCORE', pqb .. 'waiting-children', parentId) then
    redis.call('HSET', parentKey, 'defa', reason)
    flowReleaseParent(pqb, parentId)
  elseif redis.call('ZREM', pqb .. 'delayed', parentId) == 1
      or redis.call('ZREM', pqb .. 'gr:delayed', parentId) == 1 then
    redis.call('HSET', parentKey, 'defa', reason, 'delay', '0')
    redis.call('ZADD', pqb .. 'waiting-children', nowS, parentId)
    flowReleaseParent(pqb, parentId)
  elseif not redis.call('ZSCORE', pqb .. 'failed', parentId) then
    redis.call('HSET', parentKey, 'defa', reason)
  end
end

local function childDone(jobKey, completed, value)
  local parentKey, parentId, pqb, policy = flowReadParent(jobKey)
  if not parentKey then return end
  local deps = parentKey .. ':dependencies'
  if completed then
    if redis.call('SREM', deps, jobKey) == 1 then
      redis.call('HSET', parentKey .. ':processed', jobKey, value)
      if redis.call('SCARD', deps) == 0 then flowReleaseParent(pqb, parentId) end
    end
    return
  end
  if not policy then return end  -- the parent keeps waiting for this child
  if redis.call('SREM', deps, jobKey) == 0 then return end
  if policy == 'fpof' then
    redis.call('ZADD', parentKey .. ':unsuccessful', nowS, jobKey)
    flowFailParent(pqb, parentKey, parentId, jobKey)
  elseif policy == 'cpof' then
    redis.call('HSET', parentKey .. ':failed', jobKey, value)
    flowReleaseParent(pqb, parentId)
  else
    if policy == 'idof' then redis.call('HSET', parentKey .. ':failed', jobKey, value) end
    if redis.call('SCARD', deps) == 0 then flowReleaseParent(pqb, parentId) end
  end
end

local function detachChild(jobKey)
  local parentKey, parentId, pqb = flowReadParent(jobKey)
  if not parentKey then return end
  local deps = parentKey .. ':dependencies'
  if redis.call('SREM', deps, jobKey) == 1 and redis.call('SCARD', deps) == 0 then
    flowReleaseParent(pqb, parentId)
  end
end

-- The parent's side runs after the child's own move was written: a damaged
-- parent (a key of the wrong type) must not stop the script half-way and
-- leave the child in no state, so its errors are contained here. Returns
-- false when the parent could not be updated.
local function flowChildDone(jobKey, completed, value)
  return (pcall(childDone, jobKey, completed, value))
end

local function flowDetachChild(jobKey)
  return (pcall(detachChild, jobKey))
end

-- clean, drain and obliterate delete jobs without finishing them, as
-- BullMQ 6's "hard" removal does: the deleted child leaves its parent's
-- dependencies and, when it was the last one and the parent waits in
-- `waiting-children`, a parent of this same queue is deleted too (nothing
-- would ever release it; and so on up the tree), while a parent of another
-- queue moves on as when its last child completes (BullMQ puts it in
-- `wait` whatever its priority or delay, silently; here its own priority
-- and delay apply, with the `waiting` or `delayed` event). Parents deleted
-- this way are not counted in the caller's budget: at most one per level
-- of the tree (MAX_DEPTH) per deleted job.
local function dropChild(jobKey)
  local parentKey, parentId, pqb = flowReadParent(jobKey)
  if not parentKey then return end
  local deps = parentKey .. ':dependencies'
  if redis.call('SREM', deps, jobKey) == 0 or redis.call('SCARD', deps) > 0 then return end
  if pqb == base then
    if redis.call('ZREM', kWaitingChildren, parentId) == 1 then
      dropChild(parentKey)
      removeJobKeys(parentId)
      emit('removed', 'jobId', parentId, 'prev', 'waiting-children')
    end
  else
    flowReleaseParent(pqb, parentId)
  end
end

local function flowDropChild(id)
  return (pcall(dropChild, base .. id))
end
