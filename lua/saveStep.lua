--[[
  saveStep: remember the result of a durable step of an active job
  (job.step / job.sleep), in the job's hash field "pqstep:<name>", only while
  the caller still holds the job's lock (fencing).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, lockToken, name (the step's name), value (JSON text).
  Returns 0.
  Errors: -1 job missing, -2 lock missing, -6 other token.
]]
--@include prelude
--@include fence
local jobKey = base .. P.id
local fenced = fence(jobKey, P.lockToken)
if fenced ~= 0 then return fenced end
redis.call('HSET', jobKey, 'pqstep:' .. P.name, P.value)
return 0
