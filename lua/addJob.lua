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
    deid      deduplication id (optional); dettl its ttl in ms (0 = while alive);
              dmode: nil (simple or throttle), "extend" (a duplicate resets the
              ttl), "replace" (a duplicate replaces the job while it is still
              delayed: debounce), "reschedule" (a duplicate moves the delayed
              job to the new delay, keeping its data), "keepLast" (a duplicate
              added while the job is active runs after it; the last one wins)
    gid       group id (optional): the job waits in its group (includes/groups.lua)
  Returns {jobId, status}: status 1 = added (also when it replaced a
  debounced job); 0 = a job with that custom id exists (nothing written but
  the `duplicated` event); 2 = deduplicated, jobId is the id of the job that
  owns the deduplication id.
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

local replaceTtl = nil
if P.deid then
  local dk = base .. 'de:' .. P.deid
  local owner = redis.call('GET', dk)
  if owner then
    local ownerKey = base .. owner
    local delayedKey = nil
    if redis.call('ZSCORE', kDelayed, owner) then
      delayedKey = kDelayed
    elseif redis.call('ZSCORE', gk('delayed'), owner) then
      delayedKey = gk('delayed')
    end
    if P.dmode == 'replace' and delayedKey then
      -- Debounce: the new add replaces the job still waiting out its delay.
      replaceTtl = redis.call('PTTL', dk)
      redis.call('ZREM', delayedKey, owner)
      removeJobKeys(owner)
      emit('removed', 'jobId', owner, 'prev', 'delayed')
      emit('deduplicated', 'jobId', jobId, 'deduplicationId', P.deid,
           'deduplicatedJobId', owner)
    else
      if P.dmode == 'reschedule' and delayedKey then
        local due = now + P.delay
        redis.call('HSET', ownerKey, 'delay', P.delay)
        redis.call('ZADD', delayedKey, delayedScore(delayedKey, due), owner)
        emit('deduplicated', 'jobId', owner, 'deduplicationId', P.deid,
             'deduplicatedJobId', jobId)
        emit('delayed', 'jobId', owner, 'delay', due)
        markNextDelayed()
        return {owner, 2}
      end
      if P.dmode == 'keepLast' and redis.call('LPOS', kActive, owner) then
        local dnKey = base .. 'dn:' .. P.deid
        redis.call('DEL', dnKey)
        local dn = {'jid', jobId, 'name', P.name, 'data', P.data, 'opts', P.opts,
                    'delay', P.delay, 'priority', P.priority}
        if P.gid then
          dn[#dn + 1] = 'gid'
          dn[#dn + 1] = P.gid
        end
        redis.call('HSET', dnKey, unpack(dn))
        redis.call('PERSIST', dk)
      elseif P.dmode == 'extend' and P.dettl and P.dettl > 0 then
        redis.call('SET', dk, owner, 'PX', P.dettl)
      end
      emit('deduplicated', 'jobId', owner, 'deduplicationId', P.deid, 'deduplicatedJobId', jobId)
      return {owner, 2}
    end
  end
  if replaceTtl and replaceTtl > 0 then
    redis.call('SET', dk, jobId, 'PX', replaceTtl)
  elseif P.dettl and P.dettl > 0 and P.dmode ~= 'keepLast' then
    redis.call('SET', dk, jobId, 'PX', P.dettl)
  else
    redis.call('SET', dk, jobId)
  end
end

insertJob({id = jobId, name = P.name, data = P.data, opts = P.opts, delay = P.delay,
           priority = P.priority, lifo = P.lifo, gid = P.gid, deid = P.deid})
return {jobId, 1}
