--[[
  metrics: BullMQ's per-minute counters of finished jobs, kept only when the
  worker asks for them (moveToFinished's param `mdp`, the number of data
  points to keep), in the layout bullmq@6.x writes, so Bull Board's chart and
  BullMQ's getMetrics read them:

    <base>metrics:completed | metrics:failed   hash
      count      jobs finished in that state since metrics began
      prevTS     ms of the last minute boundary crossed (first finish: now)
      prevCount  `count` (before the finish that crossed it) at prevTS
    <base>metrics:<state>:data                 list, newest first
      one integer per minute: the jobs finished in the minute that ended,
      then a 0 for each minute without a finish, trimmed to `mdp` entries.

  recordFinished(completed, maxPoints)
    Count one finish (completed: true/false) at `now`. Defines only a
    function: everything per call (base, now) is read when it runs.
]]
local function recordFinished(completed, maxPoints)
  local key = base .. 'metrics:failed'
  if completed then key = base .. 'metrics:completed' end
  -- The total before this finish: this finish belongs to the current minute,
  -- which is counted when a later finish closes it.
  local before = redis.call('HINCRBY', key, 'count', 1) - 1
  local prevTs = tonumber(redis.call('HGET', key, 'prevTS'))
  if not prevTs then
    redis.call('HSET', key, 'prevTS', nowS, 'prevCount', '0')
    return
  end
  local minutes = math.floor(now / 60000) - math.floor(prevTs / 60000)
  if minutes <= 0 then return end
  if minutes > maxPoints then minutes = maxPoints end
  local closed = before - (tonumber(redis.call('HGET', key, 'prevCount')) or 0)
  -- The closed minute first, then a 0 per empty minute: LPUSH leaves the
  -- newest minute at the head.
  local points = {closed}
  for i = 2, minutes do points[i] = 0 end
  local dataKey = key .. ':data'
  for from = 1, #points, 5000 do
    redis.call('LPUSH', dataKey, unpack(points, from, math.min(from + 4999, #points)))
  end
  redis.call('LTRIM', dataKey, 0, maxPoints - 1)
  redis.call('HSET', key, 'prevCount', before, 'prevTS', now)
end
