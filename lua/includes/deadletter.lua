--[[
  deadletter: copy a job that failed for good into its queue's dead-letter
  queue, inside the script that fails it (so no crash can leave a job failed
  but not dead-lettered), and the helpers replayDeadLetters shares.

  The dead-letter queue (DLQ) is a plain queue under the same prefix, named
  by the field `pq:dlq` of the failing queue's meta hash (written by
  Queue.set_dead_letter_queue; no field, no copy). An entry is a job in the
  DLQ's `wait` list, id from the DLQ's own `id` counter, keeping the
  original's name; its data (JSON, built here with the original data, opts
  and stacktrace embedded verbatim when they are valid JSON, else as strings):
    {"queue", "job_id", "data", "opts", "failed_reason", "stacktrace",
     "attempts_made", "failed_at" (ms), "kind", "group"?}
  The DLQ gets the `added` and `waiting` events and the wake-up marker, like
  any add.

  deadLetter(jobId, kind, reason, stacktrace, attemptsMade)
    Call after the job's hash holds its failure and before any retention
    removes it. Never raises: a DLQ whose keys hold the wrong types (damaged
    from outside), or a hand-written setting naming the queue itself or no
    queue, gets no entry, and the failed job's hash gets the field `pqdle`
    naming the problem, so finishing the job is never undone.
  dlqBase(name) -> "<prefix>:<name>:" (same prefix as this queue).
  dlqEmit(dbase, name, ...) an event on another queue's stream (its cap).
  takeEntry(dbase, id, ts) -> true when entry `id` of the DLQ at `dbase` was
    still in its `wait` list with `timestamp` ts: then it is deleted (event
    `removed`); false (nothing written) when it is gone or changed. The list
    is searched from its tail, where the oldest entries are, so taking
    entries oldest first costs O(1) each, not O(length).
  Only functions here: values per call (base, now, kMeta) are read inside
  them.
]]
local function dlqBase(name)
  local prefix = string.match(base, '^(.*):[^:]*:$')
  return prefix .. ':' .. name .. ':'
end

local function dlqEmit(dbase, name, ...)
  local cap = redis.pcall('HGET', dbase .. 'meta', 'opts.maxLenEvents')
  cap = type(cap) == 'string' and tonumber(cap) or 10000
  redis.pcall('XADD', dbase .. 'events', 'MAXLEN', '~', cap, '*', 'event', name, ...)
end

-- JSON text embedded as it is when it parses, else as a JSON string.
local function jsonOr(textValue, fallback)
  if type(textValue) ~= 'string' then return fallback end
  local ok = pcall(cjson.decode, textValue)
  if ok then return textValue end
  return cjson.encode(textValue)
end

local function deadLetterEntry(jobId, kind, reason, stacktrace, attemptsMade, f)
  local origin = string.match(base, ':([^:]*):$')
  local parts = {'{"queue":', cjson.encode(origin), ',"job_id":', cjson.encode(jobId),
                 ',"data":', jsonOr(f[2], 'null'), ',"opts":', jsonOr(f[3], '{}'),
                 ',"failed_reason":', cjson.encode(reason or ''),
                 ',"stacktrace":', jsonOr(stacktrace, '[]'),
                 ',"attempts_made":', tostring(attemptsMade),
                 ',"failed_at":', tostring(now), ',"kind":', cjson.encode(kind)}
  if type(f[4]) == 'string' then
    parts[#parts + 1] = ',"group":'
    parts[#parts + 1] = cjson.encode(f[4])
  end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

local function deadLetter(jobId, kind, reason, stacktrace, attemptsMade)
  local name = redis.pcall('HGET', kMeta, 'pq:dlq')
  if type(name) ~= 'string' then return end
  local jobKey = base .. jobId
  local dbase = dlqBase(name)
  if dbase == base or name == '' or string.find(name, ':', 1, true) then
    -- Written by hand (set_dead_letter_queue refuses these): a copy into the
    -- queue itself would come back to fail again, and again.
    redis.call('HSET', jobKey, 'pqdle', 'dead-letter queue ' .. name .. ' is not usable')
    return
  end
  local f = redis.pcall('HMGET', jobKey, 'name', 'data', 'opts', 'gid')
  if f.err then return end
  -- Check the DLQ's keys before writing there (a write error would abort
  -- this script half-way through failing the job).
  local problem
  for suffix, want in pairs({wait = 'list', id = 'string', events = 'stream',
                             marker = 'zset', meta = 'hash'}) do
    local t = redis.call('TYPE', dbase .. suffix).ok
    if t ~= 'none' and t ~= want then
      problem = 'dead-letter queue ' .. name .. ': key ' .. suffix .. ' is a ' .. t
    end
  end
  local id
  if not problem then
    id = redis.pcall('INCR', dbase .. 'id')
    if type(id) ~= 'number' then
      problem = 'dead-letter queue ' .. name .. ': its id counter is not an integer'
    else
      while redis.call('EXISTS', dbase .. id) == 1 do  -- a custom id that looks like ours
        id = redis.call('INCR', dbase .. 'id')
      end
    end
  end
  if problem then
    redis.call('HSET', jobKey, 'pqdle', problem)
    return
  end
  local data = deadLetterEntry(jobId, kind, reason, stacktrace, attemptsMade, f)
  redis.call('HSET', dbase .. id, 'name', f[1] or '', 'data', data, 'opts', '{"attempts":0}',
             'timestamp', now, 'delay', 0, 'priority', 0)
  redis.call('LPUSH', dbase .. 'wait', id)
  dlqEmit(dbase, 'added', 'jobId', id, 'name', f[1] or '')
  dlqEmit(dbase, 'waiting', 'jobId', id)
  if not redis.call('HGET', dbase .. 'meta', 'paused') then
    redis.call('ZADD', dbase .. 'marker', '0', '0')
  end
end

local function takeEntry(dbase, id, ts)
  local entryKey = dbase .. id
  if redis.pcall('HGET', entryKey, 'timestamp') ~= ts then return false end
  if redis.call('LREM', dbase .. 'wait', -1, id) == 0 then return false end
  redis.call('DEL', entryKey, entryKey .. ':logs', entryKey .. ':lock')
  dlqEmit(dbase, 'removed', 'jobId', id, 'prev', 'waiting')
  return true
end
