--[[
  setGlobalLimits: set or clear the queue's global concurrency and global
  rate limit (stored in meta, read by every worker's fetch).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: concurrency (nil = leave, 0 = clear), max and durationMs
    (nil = leave, max 0 = clear).
  Returns 1.
  Errors: none.
]]
--@include prelude
if P.concurrency then
  if P.concurrency > 0 then
    redis.call('HSET', kMeta, 'concurrency', P.concurrency)
  else
    redis.call('HDEL', kMeta, 'concurrency')
  end
end
if P.max then
  if P.max > 0 then
    redis.call('HSET', kMeta, 'max', P.max, 'duration', P.durationMs)
  else
    redis.call('HDEL', kMeta, 'max', 'duration')
  end
end
if redis.call('LLEN', kWait) + redis.call('ZCARD', kPrioritized) + groupReadyCount() > 0 then
  markReady()
end
return 1
