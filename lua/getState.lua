--[[
  getState: the state of one job, in BullMQ's words.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id.
  Returns completed, failed, delayed, prioritized, active, waiting,
  waiting-children or unknown.
  Errors: none (a job key of the wrong type reads as ungrouped).
]]
--@include prelude
local jobId = P.id
if redis.call('ZSCORE', kCompleted, jobId) then return 'completed' end
if redis.call('ZSCORE', kFailed, jobId) then return 'failed' end
if redis.call('ZSCORE', kDelayed, jobId) then return 'delayed' end
if redis.call('ZSCORE', kPrioritized, jobId) then return 'prioritized' end
if redis.call('LPOS', kActive, jobId) then return 'active' end
if redis.call('LPOS', kWait, jobId) then return 'waiting' end
if redis.call('LPOS', kPaused, jobId) then return 'waiting' end
if redis.call('ZSCORE', kWaitingChildren, jobId) then return 'waiting-children' end
local gid = redis.pcall('HGET', base .. jobId, 'gid')
if type(gid) ~= 'string' then gid = nil end  -- a damaged key (not a hash)
if gid then
  if redis.call('ZSCORE', groupWaitKey(gid), jobId) then return 'waiting' end
  if redis.call('ZSCORE', gk('delayed'), jobId) then return 'delayed' end
end
return 'unknown'
