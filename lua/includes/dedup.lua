--[[
  dedup: deduplication ids (BullMQ's `de:<id>` key holds the owning job's id,
  with an optional PX ttl; pyqueue's keep-last mode keeps the pending add in
  the hash `dn:<id>`).

  dedupOnAdd(J, jobId) -> nil | {ownerId, 2}
    Called by addJob before the new job is written. J carries deid, dettl
    (ms, 0 = while the owner lives) and dmode, one of:
      nil         simple (no ttl) or throttle (ttl): a duplicate is dropped
      "extend"    a duplicate is dropped and resets the ttl
      "replace"   debounce: a duplicate replaces the owner while it is delayed
      "reschedule" a duplicate moves the delayed owner to its own delay,
                  keeping the owner's data
      "keepLast"  a duplicate added while the owner is active runs after it
                  (the last one wins), kept in dn:<id>
    Returns {ownerId, 2} when the add is deduplicated (nothing else written
    but events and the mode's own change), nil when the job is to be added;
    the de key then names jobId. An owner whose hash is gone or damaged (not
    a hash) does not block its id.
  startDeferredDuplicate(deid): when the owner finishes, the kept keep-last
    add becomes a new job.
]]
local function dedupOnAdd(J, jobId)
  local dk = base .. 'de:' .. J.deid
  local owner = redis.pcall('GET', dk)
  if type(owner) ~= 'string' or redis.call('TYPE', base .. owner).ok ~= 'hash' then
    owner = nil  -- no owner, or a stale id: the new job takes the id
  end
  local replaceTtl = nil
  if owner then
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
        redis.call('HSET', base .. owner, 'delay', J.delay)
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
  return nil
end

local function startDeferredDuplicate(deid)
  local dnKey = base .. 'dn:' .. deid
  local d = redis.pcall('HMGET', dnKey, 'jid', 'name', 'data', 'opts', 'delay', 'priority', 'gid')
  if d.err or not d[1] then return end
  redis.call('DEL', dnKey)
  redis.call('SET', base .. 'de:' .. deid, d[1])
  insertJob({id = d[1], name = d[2] or '', data = d[3] or '{}', opts = d[4] or '{}',
             delay = tonumber(d[5]) or 0, priority = tonumber(d[6]) or 0, gid = d[7], deid = deid})
end
