--[[
  addFlow: add a tree of jobs (a flow) in one step, parents before children.
  Children may live in other queues of the same prefix: their keys are
  derived from each node's queue base (includes/flow.lua). Also adds a single
  job under an existing parent (Queue.add(..., parent=...)).

  KEYS, ARGV[1..2]: see includes/prelude.lua (the root's queue).
  ARGV[3] params:
    nodes   array, a parent before its children (breadth first, as BullMQ
            writes a flow), each a map:
      qb        queue base "<prefix>:<queue>:" of the node's queue
      up        index in nodes of the node's parent (absent for the root)
      id        custom job id, or "" for the next auto id of its queue
      name, data (JSON text), opts (JSON text, BullMQ's encoding, without
                "parent": added here for children)
      delay     ms (a parent's delay applies once its children are done)
      priority  0 .. 2^21-1;  lifo  true = taken before older ready jobs
      pol       the child's failure policy: "fpof" | "cpof" | "idof" | "rdof"
      gid       group id (optional): once ready the job waits in its group
                (includes/groups.lua), a parent once its children are done
      kids      number of children (> 0: the job waits in waiting-children)
    pk, pid, pqb  optional: the key, id and queue base of an existing job that
                  becomes the root's parent
    ver     the value pyqueue writes to each queue's meta `version`
  Returns {status, id...}: status 1 = added, ids of the nodes in order;
    status 0 = the root's custom id exists: nothing was written but the
    `duplicated` event, the one id is the existing root's.
  Errors (nothing written): -5 the parent pk does not exist; -8 the parent
    pk is damaged (not a hash, or its :dependencies not a set); -11 the
    custom id of a job below the root is taken.
]]
--@deny-oom
--@include prelude
--@include flow
local nodes = P.nodes
local root = nodes[1]

if root.id ~= '' and redis.call('EXISTS', root.qb .. root.id) == 1 then
  qEmit(root.qb, 'duplicated', 'jobId', root.id)
  return {0, root.id}
end
for i = 2, #nodes do
  local node = nodes[i]
  if node.id ~= '' and redis.call('EXISTS', node.qb .. node.id) == 1 then
    return E_FLOW_ID_TAKEN
  end
end
if P.pk then
  local kind = redis.call('TYPE', P.pk).ok
  if kind == 'none' then return E_PARENT_MISSING end
  local deps = redis.call('TYPE', P.pk .. ':dependencies').ok
  if kind ~= 'hash' or (deps ~= 'none' and deps ~= 'set') then return E_JOB_CORRUPT end
end

local registered = {}
local ids, keys = {}, {}
for i, node in ipairs(nodes) do
  local qb = node.qb
  if not registered[qb] then
    registered[qb] = true
    redis.call('HSETNX', qb .. 'meta', 'opts.maxLenEvents', '10000')
    if P.ver then redis.call('HSET', qb .. 'meta', 'version', P.ver) end
  end
  local counter = redis.call('INCR', qb .. 'id')
  local id = node.id
  if id == '' then id = tostring(counter) end
  local jobKey = qb .. id
  ids[i], keys[i] = id, jobKey

  local parentKey, parentId, parentQueueKey
  if node.up then
    parentKey, parentId = keys[node.up], ids[node.up]
    parentQueueKey = string.sub(nodes[node.up].qb, 1, -2)
  elseif P.pk then
    parentKey, parentId, parentQueueKey = P.pk, P.pid, string.sub(P.pqb, 1, -2)
  end
  local opts = node.opts
  local fields = {'name', node.name, 'data', node.data, 'opts', opts, 'timestamp', now,
                  'delay', node.delay, 'priority', node.priority}
  if node.gid then
    fields[#fields + 1] = 'gid'
    fields[#fields + 1] = node.gid
  end
  if parentKey then
    fields[6] = withParentOpt(opts, parentId, parentQueueKey)
    fields[#fields + 1] = 'parentKey'
    fields[#fields + 1] = parentKey
    fields[#fields + 1] = 'parent'
    fields[#fields + 1] = parentJson(parentId, parentQueueKey, node.pol)
    redis.call('SADD', parentKey .. ':dependencies', jobKey)
  end
  redis.call('HSET', jobKey, unpack(fields))
  qEmit(qb, 'added', 'jobId', id, 'name', node.name)
  if (node.kids or 0) > 0 then
    redis.call('ZADD', qb .. 'waiting-children', nowS, id)
    qEmit(qb, 'waiting-children', 'jobId', id)
  elseif node.delay > 0 then
    qDelayed(qb, id, now + node.delay, node.gid)
  else
    qReady(qb, id, node.priority, node.lifo, node.gid)
  end
end

local reply = {1}
for i, id in ipairs(ids) do reply[i + 1] = id end
return reply
