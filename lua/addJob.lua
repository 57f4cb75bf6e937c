--[[
  addJob: add one job, ready (wait or prioritized) or delayed.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params (msgpack map):
    id        custom job id, or "" for the next auto id
    name      job name
    data      job data, JSON text
    opts      job options, JSON text in BullMQ's encoding
    delay     ms before the job may start (0 = ready now)
    priority  0 (none) .. 2^21-1
    lifo      true = taken before older ready jobs
    deid      deduplication id (optional); dettl its ttl in ms (0 = while alive)
    gid       group id (optional): the job waits in its group (includes/groups.lua)
  Returns {jobId, status}: status 1 = added; 0 = a job with that custom id
  exists (nothing written but the `duplicated` event); 2 = deduplicated,
  jobId is the id of the job that owns the deduplication id.
  Errors: none (all input is validated by the caller).
]]
--@include prelude
local counter = redis.call('INCR', kId)
local jobId = P.id
if jobId == '' then
  jobId = tostring(counter)
elseif redis.call('EXISTS', base .. jobId) == 1 then
  emit('duplicated', 'jobId', jobId)
  return {jobId, 0}
end

if P.deid then
  local dk = base .. 'de:' .. P.deid
  local owner = redis.call('GET', dk)
  if owner then
    emit('deduplicated', 'jobId', owner, 'deduplicationId', P.deid, 'deduplicatedJobId', jobId)
    return {owner, 2}
  end
  if P.dettl and P.dettl > 0 then
    redis.call('SET', dk, jobId, 'PX', P.dettl)
  else
    redis.call('SET', dk, jobId)
  end
end

local jobKey = base .. jobId
local fields = {'name', P.name, 'data', P.data, 'opts', P.opts, 'timestamp', now,
                'delay', P.delay, 'priority', P.priority}
if P.deid then
  fields[#fields + 1] = 'deid'
  fields[#fields + 1] = P.deid
end
if P.gid then
  fields[#fields + 1] = 'gid'
  fields[#fields + 1] = P.gid
end
redis.call('HSET', jobKey, unpack(fields))
emit('added', 'jobId', jobId, 'name', P.name)

if P.delay > 0 then
  addToDelayed(jobId, now + P.delay, P.gid)
else
  pushReady(jobId, P.priority, P.lifo, P.gid)
  emit('waiting', 'jobId', jobId)
end
return {jobId, 1}
