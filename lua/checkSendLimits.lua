--[[
  checkSendLimits: take one slot in every sliding window a mail falls under,
  or no slot at all when any of them is full (the email worker's
  per-recipient, per-user and per-type limits, shared by every worker).

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: windows, a list of {rule, subject, max, windowMs}; member,
    a unique id of this send (the job id and a random suffix).
  Each window is a sorted set, base .. 'pq:sw:' .. rule .. ':' .. subject
  (QueueKeys.send_window), of members scored by the ms they were taken; a
  member counts while its score is > now - windowMs (a sliding log, exact
  at any instant, unlike a fixed window or a refilling bucket).
  Returns {0} when every window had room: a slot was taken in each, expired
    members were trimmed and each key expires after its window. Else
    {waitMs, index} and nothing was written: waitMs is when the fullest
    window (1-based index, the one freeing last) frees a slot.
  Errors: none.
]]
--@include prelude
local windows = P.windows or {}
local waitMs, blocked = 0, 0
-- Read every window first: nothing is written unless all have room.
for i, w in ipairs(windows) do
  local key = base .. 'pq:sw:' .. w[1] .. ':' .. w[2]
  local max, windowMs = tonumber(w[3]), tonumber(w[4])
  local since = now - windowMs
  local count = redis.call('ZCOUNT', key, '(' .. since, '+inf')
  if count >= max then
    -- The slot frees when the (count - max + 1)-th oldest live member expires.
    local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. since, '+inf', 'WITHSCORES',
                              'LIMIT', count - max, 1)
    local wait = tonumber(oldest[2]) + windowMs - now
    if wait < 1 then wait = 1 end
    if wait > waitMs then waitMs, blocked = wait, i end
  end
end
if blocked > 0 then return {waitMs, blocked} end
for _, w in ipairs(windows) do
  local key = base .. 'pq:sw:' .. w[1] .. ':' .. w[2]
  local windowMs = tonumber(w[4])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - windowMs)
  redis.call('ZADD', key, now, P.member)
  redis.call('PEXPIRE', key, windowMs)
end
return {0}
