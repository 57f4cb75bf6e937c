--[[
  obliterate: delete the whole queue, a batch of jobs per call.

  Refuses (E_QUEUE_BUSY) while jobs are active unless forced. Call again
  while it returns 1; the last call deletes the queue-level keys.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: force, batch.
  A deleted child leaves its parent's dependencies (flowDropChild in
  includes/flow.lua: a parent in another queue left waiting for nothing
  moves on). The queue's own parents are deleted with the rest; their
  children in other queues stay and, when they finish, find no parent.
  Returns 1 when more is left to delete, 0 when the queue is gone.
  Errors: -4 jobs are active and force is false.
]]
--@include prelude
--@include flow
if not P.force and redis.call('LLEN', kActive) > 0 then return E_QUEUE_BUSY end
redis.call('HSET', kMeta, 'paused', '1')
local budget = P.batch
for _, key in ipairs({kActive, kWait, kPaused}) do
  budget = budget - deleteBatch(key, budget, true, flowDropChild)
end
local zsets = {kPrioritized, kDelayed, kCompleted, kFailed, kWaitingChildren, gk('delayed')}
for _, gid in ipairs(redis.call('SMEMBERS', gk('all'))) do zsets[#zsets + 1] = groupWaitKey(gid) end
for _, key in ipairs(zsets) do
  budget = budget - deleteBatch(key, budget, false, flowDropChild)
end
if budget <= 0 then return 1 end
for _, gid in ipairs(redis.call('HKEYS', gk('state'))) do
  redis.call('DEL', groupWaitKey(gid), base .. 'g:' .. gid .. ':limiter')
end
for _, gid in ipairs(redis.call('SMEMBERS', gk('all'))) do
  redis.call('DEL', groupWaitKey(gid), base .. 'g:' .. gid .. ':limiter')
end
redis.call('DEL', base .. 'pq:cancel', base .. 'pq:workers', base .. 'pq:workerinfo', base .. 'pq:fseq',
           gk('ready'), gk('state'), gk('limited'), gk('all'), gk('active'), gk('conf'),
           gk('delayed'), gk('seq'), gk('turn'))
redis.call('DEL', kWait, kActive, kPrioritized, kPc, kDelayed, kWaitingChildren, kCompleted,
           kFailed, kStalled, kStalledCheck, kLimiter, kMeta, kEvents, kId, kMarker, kPaused,
           base .. 'metrics:completed', base .. 'metrics:completed:data',
           base .. 'metrics:failed', base .. 'metrics:failed:data')
return 0
