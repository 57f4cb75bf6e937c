--[[
  addJob: add one job, ready (wait or prioritized) or delayed.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params (msgpack map): jobs (an array of job maps, each as below;
  add_bulk sends up to 1,000 per call; each = true: the jobs are separate
  callers' adds, batched by AsyncQueue, see pyqueue/_add_batch.py), or the
  fields of a single job:
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
              added while the job is active runs after it; the last one wins):
              see includes/dedup.lua
    gid       group id (optional): the job waits in its group (includes/groups.lua)
  Returns {jobId, status} for a single job, an array of them for `jobs`:
  status 1 = added (also when it replaced a debounced job); 0 = a job with that custom id exists (nothing written but
  the `duplicated` event); 2 = deduplicated, jobId is the id of the job that
  owns the deduplication id.
  With each: a job whose add raised a Redis error (a damaged key) gets
  {"", -1, message} instead, and the jobs after it are still added.
  Errors: none (all input is validated by the caller; a deduplication id
  whose owner is not a job hash does not block the add); a Redis error (a
  key of the wrong type) aborts the call, except per job with each.
]]
--@deny-oom
--@include prelude
--@include dedup
local function addOne(J)
  local counter = redis.call('INCR', kId)
  local jobId = J.id
  if jobId == '' then
    jobId = tostring(counter)
  elseif redis.call('EXISTS', base .. jobId) == 1 then
    emit('duplicated', 'jobId', jobId)
    return {jobId, 0}
  end

  if J.deid then
    local deduplicated = dedupOnAdd(J, jobId)
    if deduplicated then return deduplicated end
  end

  J.id = jobId  -- J has insertJob's fields already: no copy
  insertJob(J)
  return {jobId, 1}
end

if P.jobs then
  local results = {}
  deferMark = true
  if P.each then
    -- Adds of independent callers batched into one call: a Redis error in one
    -- job (a damaged key) is that job's result; the others still go in.
    for i, job in ipairs(P.jobs) do
      local ok, r = pcall(addOne, job)
      if not ok then r = {'', -1, type(r) == 'table' and r.err or tostring(r)} end
      results[i] = r
    end
  else
    for i, job in ipairs(P.jobs) do results[i] = addOne(job) end
  end
  deferMark = false
  if markPending then markReady() end
  return results
end
return addOne(P)
