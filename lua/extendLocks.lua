--[[
  extendLocks: renew many locks in one call; renewal also clears the job
  from the stalled set.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: ids (array), tokens (array, same order), lockMs.
  Returns the ids whose lock was missing or held by another token (or was
  damaged: a lock key of another type counts as missing).
  Errors: none.
]]
--@include prelude
local lost = {}
for i, jobId in ipairs(P.ids) do
  local lockKey = base .. jobId .. ':lock'
  if redis.pcall('GET', lockKey) == P.tokens[i] then  -- same test as includes/fence.lua
    redis.call('PEXPIRE', lockKey, P.lockMs)
    redis.call('SREM', kStalled, jobId)
  else
    lost[#lost + 1] = jobId
  end
end
return lost
