--[[
  scheduler: job schedulers (repeatable jobs) in BullMQ's layout.

  `repeat` zset: scheduler id -> ms of its pending iteration.
  `repeat:<id>` hash: name, ic (iteration count), offset, every | pattern,
  and when given tz, limit, startDate, endDate, data, opts; pyqueue adds
  pqgid (the template's group).
  The pending iteration is the job `repeat:<id>:<ms>` (its hash has `rjk` =
  the scheduler id, opts carry `repeat`, `repeatJobKey`, `jobId`). Exactly
  one exists per scheduler; the worker that takes it creates the next.
  Numbers read back from a scheduler's hash (ic, offset, every) fall back to
  their defaults when damaged, so a damaged field cannot stop a script
  after its first write.
]]
local function schedulerKey(id) return base .. 'repeat:' .. id end

-- Create the iteration of scheduler `id` due at nextMs; nil if it exists.
local function createIteration(id, nextMs, name, data, opts, gid)
  local jobId = 'repeat:' .. id .. ':' .. nextMs
  local jobKey = base .. jobId
  if redis.call('EXISTS', jobKey) == 1 then return nil end
  redis.call('INCR', kId)
  local delay = nextMs - now
  if delay < 0 then delay = 0 end
  opts['jobId'] = jobId
  opts['delay'] = delay
  opts['timestamp'] = now
  opts['repeatJobKey'] = id
  if type(opts['repeat']) == 'table' and opts['repeat']['pattern'] then
    opts['prevMillis'] = nextMs
  end
  local priority = tonumber(opts['priority']) or 0
  local fields = {'name', name, 'data', data, 'opts', cjson.encode(opts), 'timestamp', now,
                  'delay', delay, 'priority', priority, 'rjk', id}
  if gid then
    fields[#fields + 1] = 'gid'
    fields[#fields + 1] = gid
  end
  redis.call('HSET', jobKey, unpack(fields))
  emit('added', 'jobId', jobId, 'name', name)
  if delay > 0 then
    addToDelayed(jobId, nextMs, gid)
  else
    pushReady(jobId, priority, opts['lifo'], gid)
    emit('waiting', 'jobId', jobId)
  end
  return jobId
end

-- Remove a scheduler's pending iteration if it has not started.
local function removePendingIteration(id, score)
  local jobId = 'repeat:' .. id .. ':' .. score
  local removed = redis.call('ZREM', kDelayed, jobId) + redis.call('ZREM', gk('delayed'), jobId)
  local prev = 'delayed'
  if removed == 0 then
    removed = redis.call('LREM', kWait, 1, jobId) + redis.call('ZREM', kPrioritized, jobId)
    prev = 'waiting'
    local gid = redis.pcall('HGET', base .. jobId, 'gid')
    if type(gid) == 'string' then removed = removed + redis.call('ZREM', groupWaitKey(gid), jobId) end
  end
  if removed > 0 then removeJobKeys(jobId) end
  return removed > 0, jobId, prev
end
