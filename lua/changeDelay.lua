--[[
  changeDelay: move a delayed job's due time to `delayMs` from now.

  The job stays delayed (in `delayed`, or `gr:delayed` for a grouped job)
  with its new due time; its `delay` field becomes `delayMs` (BullMQ's
  changeDelay); event `delayed` with the new due time.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id, delayMs (>= 0).
  Returns the new due time in ms.
  Errors: E_JOB_MISSING (-1) when the job does not exist, E_WRONG_STATE (-7)
  when it is not delayed (both: nothing written), E_JOB_CORRUPT (-8) when it
  is damaged (then failed alone, includes/damage.lua).
]]
--@include prelude
local jobId = P.id
local jobKey = base .. jobId
if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
local inDelayed = redis.call('ZSCORE', kDelayed, jobId)
local inGroup = redis.call('ZSCORE', gk('delayed'), jobId)
if not inDelayed and not inGroup then return E_WRONG_STATE end
local f, damage = readJob(jobKey, 'gid')
redis.call('ZREM', kDelayed, jobId)
redis.call('ZREM', gk('delayed'), jobId)
if damage then
  failDamaged(jobId, damage, 'delayed')
  return E_JOB_CORRUPT
end
local due = now + P.delayMs
redis.call('HSET', jobKey, 'delay', P.delayMs)
addToDelayed(jobId, due, f.gid or nil)
return due
