--[[
  damage: read a job safely, and fail a damaged job alone.

  A job's hash can be damaged from outside (a hand edit, a buggy producer, a
  partial restore): a counter that is not a number, a key of another type, a
  hash that is gone. Redis does not roll a script back when it errors
  half-way, so a script reads each job with readJob before its first write on
  that job; a damaged job goes to `failed` on its own (failDamaged) with a
  failedReason naming the damage, and the other jobs of the call move on.

  readJob(jobKey, names...) -> fields (map name -> value or false), nil
                            -> nil, reason          when the job is damaged
  readHeldJob(jobKey, names...): the same for a job whose hash the caller
    knows exists (it was fenced); reads and checks only `names`.
    readJob always reads `timestamp` too. Damage: the key is not a hash, the hash is
    missing, an integer field (atm, ats, stc: scripts HINCRBY them) is not an
    integer, a number field (priority, delay, timestamp) is not a finite number.
  failDamaged(jobId, reason, prev): the job into `failed` with failedReason =
    reason, finishedOn = now (event `failed`), out of `stalled` and of the
    cancel requests; a key of the wrong type or a missing hash is replaced by
    a minimal hash (name, data, opts, timestamp) that records the failure.
    The caller has taken the id out of its previous state.
]]
local INTEGER_FIELDS = {atm = true, ats = true, stc = true}
local NUMBER_FIELDS = {priority = true, delay = true, timestamp = true}
local CHECKED_FIELDS = {atm = true, ats = true, stc = true, priority = true, delay = true,
                        timestamp = true}

local function fieldDamage(name, value)
  if not value then return nil end
  local bad
  if INTEGER_FIELDS[name] then
    bad = not string.match(value, '^%-?%d+$') or #value > 18
  elseif NUMBER_FIELDS[name] then
    local n = tonumber(value)
    bad = not n or n ~= n or n == math.huge or n == -math.huge
  end
  if bad then
    local shown = value
    if #shown > 40 then shown = string.sub(shown, 1, 40) .. '...' end
    local kind = 'a number'
    if INTEGER_FIELDS[name] then kind = 'an integer' end
    return 'job hash corrupt: field ' .. name .. "='" .. shown .. "' is not " .. kind
  end
  return nil
end

local function readJob(jobKey, ...)
  local names = {'timestamp', ...}
  local values = redis.pcall('HMGET', jobKey, unpack(names))
  if values.err then
    return nil, 'job hash corrupt: the key holds a ' .. redis.call('TYPE', jobKey).ok ..
      ', not a hash'
  end
  if not values[1] and redis.call('EXISTS', jobKey) == 0 then
    return nil, 'job hash missing: the job was deleted outside pyqueue'
  end
  local fields = {}
  for i, name in ipairs(names) do
    local bad = fieldDamage(name, values[i])
    if bad then return nil, bad end
    fields[name] = values[i]
  end
  return fields, nil
end

-- The damage that would break running a job, from its hash read with
-- HGETALL (flat array), or nil; and the hash's `ats` (0 when absent). Checks
-- the attempt counters that fetch and finish increment (atm, ats; stc is the
-- stalled check's, checked there). Fields that running the job does not use
-- (priority, delay, timestamp) are checked where they are used (promotion,
-- retry, clean). Hot: every job a worker takes.
local function hashDamage(flat)
  local ats = 0
  for i = 1, #flat, 2 do
    local name = flat[i]
    if INTEGER_FIELDS[name] then
      local bad = fieldDamage(name, flat[i + 1])
      if bad then return bad, 0 end
      if name == 'ats' then ats = tonumber(flat[i + 1]) end
    end
  end
  return nil, ats
end

-- readHeldJob(jobKey, names...): readJob for a job whose hash is known to
-- exist (the caller fenced it): reads and checks only `names`. Hot (every
-- finish).
local function readHeldJob(jobKey, ...)
  local names = {...}
  local values = redis.pcall('HMGET', jobKey, ...)
  if values.err then
    return nil, 'job hash corrupt: the key holds a ' .. redis.call('TYPE', jobKey).ok ..
      ', not a hash'
  end
  local fields = {}
  for i = 1, #names do
    local name, value = names[i], values[i]
    if value and CHECKED_FIELDS[name] then
      local bad = fieldDamage(name, value)
      if bad then return nil, bad end
    end
    fields[name] = value
  end
  return fields, nil
end

local function failDamaged(jobId, reason, prev)
  local jobKey = base .. jobId
  local kind = redis.call('TYPE', jobKey).ok
  if kind == 'hash' then
    releaseDedup(jobKey, jobId)
  else
    redis.call('DEL', jobKey)
    redis.call('HSET', jobKey, 'name', '', 'data', '{}', 'opts', '{}', 'timestamp', nowS)
  end
  redis.call('HSET', jobKey, 'failedReason', reason, 'finishedOn', nowS)
  redis.call('SREM', kStalled, jobId)
  redis.call('SREM', base .. 'pq:cancel', jobId)
  redis.call('ZADD', kFailed, nowS, jobId)
  emit('failed', 'jobId', jobId, 'failedReason', reason, 'prev', prev)
end
