--[[
  updateJob: change a job's progress, data or logs. When a lock token is
  given (calls from inside a worker), the write happens only if the caller
  still holds the job's lock (fencing).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, lockToken (optional), and one of
    progress  JSON text: set `progress` and emit a progress event
    data      JSON text: replace `data`
    log       a log line: append to <job>:logs, trimmed to keepLogs (if > 0)
  Returns 0 (progress, data) or the log's length (log).
  Errors: -1 job missing, -2 lock missing, -6 other token (fencing:
  includes/fence.lua). A key of the wrong type at the job's place makes the
  single write fail with Redis' WRONGTYPE error: nothing is written.
]]
--@include prelude
--@include fence
local jobId = P.id
local jobKey = base .. jobId
if P.lockToken then
  local fenced = fence(jobKey, P.lockToken)
  if fenced ~= 0 then return fenced end
elseif redis.call('EXISTS', jobKey) == 0 then
  return E_JOB_MISSING
end
if P.progress then
  redis.call('HSET', jobKey, 'progress', P.progress)
  emit('progress', 'jobId', jobId, 'data', P.progress)
  return 0
end
if P.data then
  redis.call('HSET', jobKey, 'data', P.data)
  return 0
end
local n = redis.call('RPUSH', jobKey .. ':logs', P.log)
if P.keepLogs and P.keepLogs > 0 then
  redis.call('LTRIM', jobKey .. ':logs', -P.keepLogs, -1)
  n = math.min(n, P.keepLogs)
end
return n
