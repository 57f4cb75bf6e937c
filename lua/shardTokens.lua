--[[
  shardTokens: hand out a sharded queue's global rate-limit and concurrency
  tokens from its coordinator (pyqueue/_shard_limits.py), so that the workers
  of every shard take jobs within one limit. Also takes back what a worker
  gives up: leases of jobs that ended, tokens it got but found no job for.

  KEYS, ARGV[1..2]: see includes/prelude.lua; the keys are those of the
    coordinator, a queue named '{<name>}' (one slot, apart from the shards).
    ARGV[2] (now) is not used: the script reads the server's TIME.
  Keys used, from base (QueueKeys.shard_limits, shard_rate, shard_leases):
    pq:limits         hash: max, duration (ms), concurrency (the settings)
    pq:limits:rate    hash: n (tokens granted in the window), w (its start,
                      ms); expires with the window (a fixed window counter)
    pq:limits:leases  zset: member = lease id, score = its expiry (ms)
  ARGV[3] params: k (tokens wanted; 0: only give back), release (lease ids
    to drop), refund and window (rate tokens not used, granted in the window
    that started at ms window: refunded only if that window is still the
    current one), lmax/ldur (the worker's own limiter: used when the
    settings set no rate), leaseMs, lease (prefix of the new lease ids).
  Returns {granted, waitMs, flags, window, why}: granted = min(k, what the
    rate window and the live leases allow); leases lease .. ':' .. i for
    i = 1..granted were added when a concurrency is set. flags: 1 a rate
    limit applies, 2 a concurrency is set. window: the start of the rate
    window granted from (0: none). When granted is 0: why = 1 (rate window
    full; waitMs until it resets) or 2 (every lease live; waitMs until the
    first one expires, unless released before).
  Errors: none.
]]
--@include prelude
-- The coordinator's own clock, not the caller's: every shard's workers call
-- this script, and their clocks' measured offsets differ by a few ms, so a
-- rate window's start (and every lease's expiry) is taken here, where Redis
-- also counts the window's expiry.
local time = redis.call('TIME')
now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
nowS = intStr(now)
local kLimits, kRate, kLeases = base .. 'pq:limits', base .. 'pq:limits:rate',
  base .. 'pq:limits:leases'

if P.release and #P.release > 0 then redis.call('ZREM', kLeases, unpack(P.release)) end
if P.refund and P.refund > 0 and tonumber(redis.call('HGET', kRate, 'w')) == P.window then
  local n = tonumber(redis.call('HGET', kRate, 'n')) or 0
  redis.call('HSET', kRate, 'n', math.max(n - P.refund, 0))
end

local s = redis.call('HMGET', kLimits, 'max', 'duration', 'concurrency')
local lmax, ldur = tonumber(s[1] or P.lmax), tonumber(s[2] or P.ldur)
if not ldur then lmax = nil end
local concurrency = tonumber(s[3])
local flags = (lmax and 1 or 0) + (concurrency and 2 or 0)
local granted = tonumber(P.k) or 0
if granted == 0 then return {0, 0, flags, 0, 0} end

if concurrency then
  -- Expired leases first: a crashed worker's capacity comes back.
  redis.call('ZREMRANGEBYSCORE', kLeases, '-inf', now)
  granted = math.min(granted, math.max(concurrency - redis.call('ZCARD', kLeases), 0))
  if granted == 0 then
    local first = redis.call('ZRANGE', kLeases, 0, 0, 'WITHSCORES')
    return {0, first[2] and math.max(tonumber(first[2]) - now, 1) or 1, flags, 0, 2}
  end
end

local window = 0
if lmax then
  local r = redis.call('HMGET', kRate, 'n', 'w')
  local used = tonumber(r[1]) or 0
  local fresh = false
  window = tonumber(r[2])
  if not window or redis.call('PTTL', kRate) < 0 then  -- a new window starts now
    window, used, fresh = now, 0, true
    redis.call('DEL', kRate)
  end
  granted = math.min(granted, math.max(lmax - used, 0))
  if granted == 0 then return {0, math.max(redis.call('PTTL', kRate), 1), flags, 0, 1} end
  redis.call('HSET', kRate, 'n', used + granted, 'w', window)
  if fresh then redis.call('PEXPIRE', kRate, ldur) end
end

if concurrency then
  for i = 1, granted do redis.call('ZADD', kLeases, now + P.leaseMs, P.lease .. ':' .. i) end
end
return {granted, 0, flags, window, 0}
