--[[
  addJob: add one job, ready (wait or prioritized) or delayed.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params (msgpack map): jobs (an array of job maps, each as below;
  add_bulk sends up to 1,000 per call), or the fields of a single job:
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
  Returns {jobId, status} for a single job, an array of them for `jobs`: status 1 = added (also when it replaced a
  debounced job); 0 = a job with that custom id exists (nothing written but
  the `duplicated` event); 2 = deduplicated, jobId is the id of the job that
  owns the deduplication id.
  Errors: none (all input is validated by the caller).
]]
--@include prelude
local function addOne(J)
  local counter = redis.call('INCR', kId)
  local jobId = J.id
  if jobId == '' then
    jobId = tostring(counter)
  elseif redis.call('EXISTS', base .. jobId) == 1 then
    emit('duplicated', 'jobId', jobId)
    return {jobId, 0}
  end

  local replaceTtl = nil
  if J.deid then
    local dk = base .. 'de:' .. J.deid
    local owner = redis.call('GET', dk)
    if owner then
      local ownerKey = base .. owner
      local delayedKey = nil
      if redis.call('ZSCORE', kDelayed, owner) then
        delayedKey = kDelayed
      elseif redis.call('ZSCORE', gk('delayed'), owner) then
        delayedKey = gk('delayed')
      end
      if J.dmode == 'replace' and delayedKey then
        -- Debounce: the new add replaces the job still waiting out its delay.
        replaceTtl = redis.call('PTTL', dk)
        redis.call('ZREM', delayedKey, owner)
        removeJobKeys(owner)
        emit('removed', 'jobId', owner, 'prev', 'delayed')
        emit('deduplicated', 'jobId', jobId, 'deduplicationId', J.deid,
             'deduplicatedJobId', owner)
      else
        if J.dmode == 'reschedule' and delayedKey then
          local due = now + J.delay
          redis.call('HSET', ownerKey, 'delay', J.delay)
          redis.call('ZADD', delayedKey, delayedScore(delayedKey, due), owner)
          emit('deduplicated', 'jobId', owner, 'deduplicationId', J.deid,
               'deduplicatedJobId', jobId)
          emit('delayed', 'jobId', owner, 'delay', due)
          markNextDelayed()
          return {owner, 2}
        end
        if J.dmode == 'keepLast' and redis.call('LPOS', kActive, owner) then
          local dnKey = base .. 'dn:' .. J.deid
          redis.call('DEL', dnKey)
          local dn = {'jid', jobId, 'name', J.name, 'data', J.data, 'opts', J.opts,
                      'delay', J.delay, 'priority', J.priority}
          if J.gid then
            dn[#dn + 1] = 'gid'
            dn[#dn + 1] = J.gid
          end
          redis.call('HSET', dnKey, unpack(dn))
          redis.call('PERSIST', dk)
        elseif J.dmode == 'extend' and J.dettl and J.dettl > 0 then
          redis.call('SET', dk, owner, 'PX', J.dettl)
        end
        emit('deduplicated', 'jobId', owner, 'deduplicationId', J.deid, 'deduplicatedJobId', jobId)
        return {owner, 2}
      end
    end
    if replaceTtl and replaceTtl > 0 then
      redis.call('SET', dk, jobId, 'PX', replaceTtl)
    elseif J.dettl and J.dettl > 0 and J.dmode ~= 'keepLast' then
      redis.call('SET', dk, jobId, 'PX', J.dettl)
    else
      redis.call('SET', dk, jobId)
    end
  end

  insertJob({id = jobId, name = J.name, data = J.data, opts = J.opts, delay = J.delay,
             priority = J.priority, lifo = J.lifo, gid = J.gid, deid = J.deid})
  return {jobId, 1}
end

if P.jobs then
  local results = {}
  deferMark = true
  for i, job in ipairs(P.jobs) do results[i] = addOne(job) end
  deferMark = false
  if markPending then markReady() end
  return results
end
return addOne(P)
