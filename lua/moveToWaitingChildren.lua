--[[
  moveToWaitingChildren: a step job (or any active parent) waits for the
  children it added: out of active, into waiting-children, without holding a
  worker slot. The last child to finish moves it back (includes/flow.lua).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, lockToken (the worker's lock: fencing).
  Returns 1 = it now waits in waiting-children; 0 = it has no unfinished
    children (nothing written, the job stays active and its lock held).
  Errors: -1 job missing, -2 lock missing, -6 other token, -3 not active.
]]
--@include prelude
--@include fence
local jobId = P.id
local jobKey = base .. jobId
local fenced = fence(jobKey, P.lockToken)
if fenced ~= 0 then return fenced end
local pending = redis.pcall('SCARD', jobKey .. ':dependencies')
if type(pending) ~= 'number' or pending == 0 then return 0 end
if redis.call('LREM', kActive, -1, jobId) == 0 then return E_NOT_ACTIVE end
redis.call('DEL', jobKey .. ':lock')
redis.call('SREM', kStalled, jobId)
redis.call('ZADD', kWaitingChildren, nowS, jobId)
emit('waiting-children', 'jobId', jobId, 'prev', 'active')
return 1
