--[[
  purgeDeadLetters: delete dead-letter entries without replaying them (each
  only if it is still in the dead-letter queue's `wait` list, unchanged).

  KEYS, ARGV[1..2]: see includes/prelude.lua; the KEYS are the DEAD-LETTER
    queue's.
  ARGV[3] params:
    entries  array of {id, ts}: the entry's job id and its `timestamp` as the
             caller read it (an entry that changed since is left alone)
  Returns the number of entries deleted. Each gets the event `removed`.
  Errors: none.
]]
--@include prelude
--@include deadletter
local removed = 0
for _, e in ipairs(P.entries) do
  if takeEntry(base, e.id, e.ts) then removed = removed + 1 end
end
return removed
