--[[
  replayDeadLetters: move dead-letter entries back into their origin queue,
  each entry in one step: it leaves the dead-letter queue and its job is
  added to the origin under a new id, or nothing happens to it (so an entry
  is never both in the DLQ and re-added, and never lost).

  KEYS, ARGV[1..2]: see includes/prelude.lua; the KEYS are the ORIGIN
    queue's (the queue the jobs go back to).
  ARGV[3] params:
    dlq      the dead-letter queue's name (same prefix as the origin)
    entries  array, each a map:
      id        the entry's job id in the DLQ
      ts        the entry's `timestamp` as read by the caller: an entry that
                changed since (removed and its id reused) is skipped
      name, data, opts, priority, lifo, gid   the job to add back (data and
                opts JSON, opts without jobId / delay / dedup / repeat)
      delay     ms before it may start (0: ready now; spreads a replay out)
      newId     optional: the new job's id when no job holds it yet (else,
                and without it, the next id of the origin's counter)
  Returns one value per entry: the new job id, or "" when the entry was not
  in the DLQ's `wait` list any more (replayed, purged or taken by a worker
  meanwhile): nothing was written for it.
  Errors: E_WRONG_STATE (-7) when the origin's id counter is not an integer
    (damaged from outside); nothing is written then.
]]
--@deny-oom
--@include prelude
--@include deadletter
local dbase = dlqBase(P.dlq)
local counter = redis.pcall('GET', kId)
if type(counter) == 'table' or (counter and not string.match(counter, '^%d+$')) then
  return E_WRONG_STATE
end
local out = {}
for i, e in ipairs(P.entries) do
  out[i] = ''
  if takeEntry(dbase, e.id, e.ts) then
    local id = e.newId
    if not id or redis.call('EXISTS', base .. id) == 1 then
      id = tostring(redis.call('INCR', kId))
      while redis.call('EXISTS', base .. id) == 1 do  -- a custom id that looks like ours
        id = tostring(redis.call('INCR', kId))
      end
    end
    insertJob({id = id, name = e.name, data = e.data, opts = e.opts, delay = e.delay or 0,
               priority = e.priority or 0, lifo = e.lifo, gid = e.gid})
    out[i] = id
  end
end
return out
