--[[
  removeChildDependency: a flow child stops being a dependency of its parent
  (BullMQ's Job.removeChildDependency): it leaves the parent's :dependencies
  set and loses its parentKey and parent fields; when the parent waited for
  it last, the parent moves on (includes/flow.lua).

  KEYS, ARGV[1..2]: see includes/prelude.lua (the child's queue).
  ARGV[3] params: id (the child).
  Returns 1 removed; 0 the job has no parent, or its parent does not wait for
    it (it finished, or was removed already).
  Errors: -1 job missing (nothing written).
]]
--@include prelude
--@include flow
local jobKey = base .. P.id
if redis.call('EXISTS', jobKey) == 0 then return E_JOB_MISSING end
local parentKey = flowReadParent(jobKey)
if not parentKey then return 0 end
if redis.call('SISMEMBER', parentKey .. ':dependencies', jobKey) == 0 then return 0 end
flowDetachChild(jobKey)
redis.call('HDEL', jobKey, 'parentKey', 'parent')
return 1
