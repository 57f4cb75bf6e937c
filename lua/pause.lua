--[[
  pause: pause or resume the queue globally.

  Pausing sets meta `paused` and deletes the wake-up marker, so workers take
  nothing new; jobs stay where they are (v6 has no `paused` list). Resuming
  clears the flag, drains a legacy `paused` list into wait and re-adds the
  markers.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: pause (true = pause, false = resume).
  Returns 1.
  Errors: none.
]]
--@include prelude
if P.pause then
  redis.call('HSET', kMeta, 'paused', '1')
  redis.call('DEL', kMarker)
  emit('paused')
else
  redis.call('HDEL', kMeta, 'paused')
  while redis.call('RPOPLPUSH', kPaused, kWait) do end
  if redis.call('LLEN', kWait) + redis.call('ZCARD', kPrioritized) + groupReadyCount() > 0 then
    markReady()
  end
  markNextDelayed()
  emit('resumed')
end
return 1
