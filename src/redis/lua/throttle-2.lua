--[[
  The per-user buy rate limit on its own, for `serve --mode sync` (in queue mode the buy
  script does the same inside itself). Fixed window per (product, user).

  KEYS[1] sale   hash total, limit, starts       ({p:<id>}:sale)
  KEYS[2] rate   this user's request counter     ({p:<id>}:rate:...)

  ARGV[1] max requests per window (> 0)
  ARGV[2] window, ms
  ARGV[3] 1 to count a request, -1 to give one back (a request that turned out to be a replay)

  Returns {verdict, ms until the window resets}:
    verdict  1 counted and allowed, 0 counted and over the limit,
            -1 not counted (no such product here: an unknown product must leave no key behind)
]]
if ARGV[3] == '-1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
  return {-1, 0}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
if count > tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[2])} end
return {1, 0}
