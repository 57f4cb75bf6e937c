--[[
  updateJobScheduler: create a scheduler's next iteration. Called by the
  worker that took the current iteration, before it runs it (so a failing
  iteration does not stop the schedule).

  Stale calls do nothing: the scheduler is gone, or its pending iteration is
  not the one the caller took (upserted meanwhile, or another worker already
  moved it on). Every-schedulers skip the slots missed while nothing ran.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id (scheduler), cur (the iteration's job id), opts (JSON
    of the next iteration's opts, from the current one with count + 1),
    nextMs (cron: computed by the caller; every: nil, computed here).
  Returns 1 when the next iteration was created, else 0.
  Errors: none (damaged numbers in the scheduler's hash fall back to
  their defaults).
]]
--@include prelude
--@include scheduler
local score = redis.call('ZSCORE', kRepeat, P.id)
if not score or ('repeat:' .. P.id .. ':' .. score) ~= P.cur then return 0 end
local h = redis.call('HMGET', schedulerKey(P.id), 'name', 'data', 'every', 'offset', 'pqgid', 'ic')
local nextMs = P.nextMs
if not nextMs then
  local every = tonumber(h[3])
  if not every or every <= 0 then return 0 end
  local offset = tonumber(h[4]) or 0
  local floor = math.max(now, tonumber(score))
  nextMs = math.floor((floor - offset) / every) * every + offset
  while nextMs <= floor do nextMs = nextMs + every end
end
if redis.call('EXISTS', base .. 'repeat:' .. P.id .. ':' .. nextMs) == 1 then return 0 end
-- Everything read and decoded before the first write.
local opts = cjson.decode(P.opts)
local ic = math.floor(tonumber(h[6]) or 0) + 1
redis.call('ZADD', kRepeat, nextMs, P.id)
redis.call('HSET', schedulerKey(P.id), 'ic', ic)
createIteration(P.id, nextMs, h[1] or P.id, h[2] or '{}', opts, h[5])
return 1
