--[[
  removeJob: remove one job from whichever state holds it, with its keys.
  A locked (running) job is not removed.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: id.
  A child leaves its parent's dependencies (the parent moves on when it was
  the last); a parent whose children have not all finished is not removed.
  Returns 1 removed, 0 not removed (locked, or no such job).
  Errors: -10 the job has children that have not finished; otherwise none (a damaged job, even a key of another type, is removed).
]]
--@include prelude
--@include flow
local jobId = P.id
local jobKey = base .. jobId
if redis.call('EXISTS', jobKey .. ':lock') == 1 then return 0 end
if redis.call('EXISTS', jobKey) == 0 then return 0 end
if flowCanComplete(jobKey) == E_PENDING_DEPS then return E_PENDING_DEPS end
local prev = 'unknown'
local gid = redis.pcall('HGET', jobKey, 'gid')
if type(gid) ~= 'string' then gid = nil end  -- a damaged key (not a hash) is removed too
for state, key in pairs({waiting = kWait, active = kActive, paused = kPaused}) do
  if redis.call('LREM', key, 0, jobId) > 0 then
    prev = state
    if gid and state == 'active' then groupRelease(gid) end
  end
end
if gid then
  if redis.call('ZREM', groupWaitKey(gid), jobId) > 0 then prev = 'waiting' end
  if redis.call('ZCARD', groupWaitKey(gid)) == 0 then redis.call('SREM', gk('all'), gid) end
  if redis.call('ZREM', gk('delayed'), jobId) > 0 then prev = 'delayed' end
end
for state, key in pairs({prioritized = kPrioritized, delayed = kDelayed, completed = kCompleted,
                         failed = kFailed, ['waiting-children'] = kWaitingChildren}) do
  if redis.call('ZREM', key, jobId) > 0 then prev = state end
end
redis.call('SREM', kStalled, jobId)
redis.call('SREM', base .. 'pq:cancel', jobId)
flowDetachChild(jobKey)  -- a child: its parent stops waiting for it
removeJobKeys(jobId)
emit('removed', 'jobId', jobId, 'prev', prev)
return 1
