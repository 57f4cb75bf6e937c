--[[
  groups: per-group queues with their own rate limit and concurrency,
  served round-robin (pyqueue only; BullMQ has no such keys, so a BullMQ
  worker never takes a grouped job and cannot exceed a group's limits).

  Keys, all under base ("<prefix>:<queue>:"), documented in docs/format.md:
    gr:ready      list   groups that have ready jobs and may run now; a take
                         pops the head and pushes the group back to the tail
    gr:state      hash   gid -> "r" (in gr:ready), "c" (at its concurrency),
                         "t" (rate limited, in gr:limited)
    gr:limited    zset   rate-limited gid -> ms when its window resets
    gr:all        set    gids that have ready jobs (for counts, drain, obliterate)
    gr:active     hash   gid -> jobs of the group in active
    gr:conf       hash   "c:<gid>" concurrency, "m:<gid>" max, "d:<gid>" duration
                         ms; gid "*" is the default for every group
    gr:delayed    zset   delayed grouped jobs (score as in `delayed`)
    gr:seq        string FIFO sequence within groups
    gr:turn       string "g" when groups are served next, "u" for ungrouped
    g:<gid>:wait  zset   the group's ready jobs, score priority*2^32 + seq
    g:<gid>:limiter string the group's rate-limit counter (like `limiter`)
  A grouped job's hash carries `gid`.
]]
local function gk(suffix) return base .. 'gr:' .. suffix end
local function groupWaitKey(gid) return base .. 'g:' .. gid .. ':wait' end

local function groupLimits(gid)
  local v = redis.call('HMGET', gk('conf'), 'c:' .. gid, 'm:' .. gid, 'd:' .. gid,
                       'c:*', 'm:*', 'd:*')
  return tonumber(v[1] or v[4]), tonumber(v[2] or v[5]), tonumber(v[3] or v[6])
end

local function groupMakeReady(gid)
  redis.call('HSET', gk('state'), gid, 'r')
  redis.call('RPUSH', gk('ready'), gid)
end

-- Queue a job in its group (toFront: taken next within the group).
local function groupPush(gid, jobId, priority, toFront)
  local seq = redis.call('INCR', gk('seq')) % PRIORITY_SHIFT
  if toFront then seq = -seq end
  redis.call('ZADD', groupWaitKey(gid), (priority or 0) * PRIORITY_SHIFT + seq, jobId)
  redis.call('SADD', gk('all'), gid)
  if not redis.call('HGET', gk('state'), gid) then groupMakeReady(gid) end
  markReady()
end

-- A job of the group left active: free its concurrency slot.
local function groupRelease(gid)
  if redis.call('HINCRBY', gk('active'), gid, -1) <= 0 then
    redis.call('HDEL', gk('active'), gid)
  end
  if redis.call('HGET', gk('state'), gid) == 'c' then
    if redis.call('ZCARD', groupWaitKey(gid)) > 0 then
      groupMakeReady(gid)
      markReady()
    else
      redis.call('HDEL', gk('state'), gid)
    end
  end
end

-- Rate-limited groups whose window has passed become ready again.
local function groupPromoteLimited()
  local due = redis.call('ZRANGEBYSCORE', gk('limited'), '-inf', now, 'LIMIT', 0, 1000)
  for _, gid in ipairs(due) do
    redis.call('ZREM', gk('limited'), gid)
    if redis.call('ZCARD', groupWaitKey(gid)) > 0 then
      groupMakeReady(gid)
    else
      redis.call('HDEL', gk('state'), gid)
    end
  end
end

-- Take the next job from the groups, round-robin; nil when no group may run.
local function groupTake()
  local tries = redis.call('LLEN', gk('ready'))
  while tries > 0 do
    tries = tries - 1
    local gid = redis.call('LPOP', gk('ready'))
    if not gid then return nil end
    local gwait = groupWaitKey(gid)
    local conc, gmax, gdur = groupLimits(gid)
    local parked = false
    if conc and (tonumber(redis.call('HGET', gk('active'), gid)) or 0) >= conc then
      redis.call('HSET', gk('state'), gid, 'c')
      parked = true
    elseif gmax then
      local lk = base .. 'g:' .. gid .. ':limiter'
      if (tonumber(redis.pcall('GET', lk)) or 0) >= gmax then
        local ttl = redis.call('PTTL', lk)
        if ttl > 0 then
          redis.call('HSET', gk('state'), gid, 't')
          redis.call('ZADD', gk('limited'), now + ttl, gid)
          parked = true
        else
          redis.call('DEL', lk)
        end
      end
    end
    if not parked then
      local popped = redis.call('ZPOPMIN', gwait)
      if popped[1] then
        if gmax then
          local lk = base .. 'g:' .. gid .. ':limiter'
          if redis.call('INCR', lk) == 1 then redis.call('PEXPIRE', lk, gdur or 1000) end
        end
        redis.call('HINCRBY', gk('active'), gid, 1)
        if redis.call('ZCARD', gwait) > 0 then
          redis.call('RPUSH', gk('ready'), gid)
        else
          redis.call('HDEL', gk('state'), gid)
          redis.call('SREM', gk('all'), gid)
        end
        return popped[1]
      end
      redis.call('HDEL', gk('state'), gid)
      redis.call('SREM', gk('all'), gid)
    end
  end
  return nil
end

-- Ms when the earliest rate-limited group may run again (0 = none).
local function groupNextDue()
  local head = redis.call('ZRANGE', gk('limited'), 0, 0, 'WITHSCORES')
  if head[2] then return tonumber(head[2]) end
  return 0
end

local function groupReadyCount()
  return redis.call('LLEN', gk('ready'))
end
