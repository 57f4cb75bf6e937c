--[[
  moveToActive: promote due delayed jobs, then take up to n ready jobs,
  locking each with its own token.

  KEYS, ARGV[1..2]: see includes/prelude.lua.
  ARGV[3] params: token, lockMs, n, lmax, ldur, wname (see includes/fetch.lua).
  Returns: fetch's reply (includes/fetch.lua).
  Errors: none (a damaged job is failed alone, see includes/fetch.lua).
]]
--@deny-oom
--@include prelude
--@include fetch
return fetchJobs()
