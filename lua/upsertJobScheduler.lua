--[[
  upsertJobScheduler: create or replace a job scheduler and its pending
  iteration (which replaces any pending iteration that has not started).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params:
    id        scheduler id
    name      template job name;  data: template data JSON;  opts: template
              opts JSON (BullMQ encoding);  gid: template group (optional)
    every     ms (every-schedulers) | pattern: cron pattern
    tz, limit, startDate, endDate (ms), offset (ms, every only): optional
    repeat    JSON of the `repeat` object written into each iteration's opts
    nextMs    cron: the first iteration's time (computed by the caller)
  Returns {jobId of the pending iteration, its ms}.
  Errors: none (damaged numbers in the old scheduler hash fall back to
  their defaults).
]]
--@deny-oom
--@include prelude
--@include scheduler
local hkey = schedulerKey(P.id)
local oldScore = redis.call('ZSCORE', kRepeat, P.id)
local old = redis.call('HMGET', hkey, 'ic', 'offset', 'every')
if oldScore then removePendingIteration(P.id, oldScore) end

local nextMs
local offset = P.offset or tonumber(old[2])
if P.every then
  if oldScore and old[3] == tostring(P.every) then
    nextMs = tonumber(oldScore)
  elseif P.startDate and P.startDate > now then
    nextMs = P.startDate
  elseif P.offset then
    nextMs = math.floor(now / P.every) * P.every + P.offset
  else
    nextMs = now
  end
  if not offset then offset = nextMs % P.every end
else
  nextMs = P.nextMs
  offset = offset or 0
end
local ic = tonumber(old[1]) or 1

redis.call('DEL', hkey)
local fields = {'name', P.name, 'ic', ic, 'offset', offset}
local optional = {'every', 'pattern', 'tz', 'limit', 'startDate', 'endDate', 'data', 'opts'}
for _, f in ipairs(optional) do
  if P[f] ~= nil then
    fields[#fields + 1] = f
    fields[#fields + 1] = P[f]
  end
end
if P.gid then
  fields[#fields + 1] = 'pqgid'
  fields[#fields + 1] = P.gid
end
redis.call('HSET', hkey, unpack(fields))
redis.call('ZADD', kRepeat, nextMs, P.id)

local opts = cjson.decode(P.opts or '{}')
opts['repeat'] = cjson.decode(P['repeat'])
opts['repeat']['count'] = ic
local jobId = createIteration(P.id, nextMs, P.name, P.data or '{}', opts, P.gid)
return {jobId or ('repeat:' .. P.id .. ':' .. nextMs), nextMs}
