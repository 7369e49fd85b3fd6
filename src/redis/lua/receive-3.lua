--[[
  Receives units lent by another shard (lend-3.lua), exactly once per transfer: the lender,
  a borrower completing a stalled move and `fsale reconcile` may all run it for one transfer.

  KEYS[1] stock     integer units left                    ({p:<id>~s.n}:stock)
  KEYS[2] received  set of transfer ids received here     ({p:<id>~s.n}:received)
  KEYS[3] moves     integer bumped by every change that adds units here

  ARGV[1] transfer id
  ARGV[2] units
  ARGV[3] stock channel (sharded pub/sub, in this key set's hash tag)
  ARGV[4] prefix of the stock publish ('<shard>/<shards>:')

  The stock publish names the transfer ("<left>|received|<id>|<units>"; see lend-3.lua).

  Returns {applied (1 | 0), units left here}.
]]
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local left = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[3])
redis.call('SPUBLISH', ARGV[3], ARGV[4] .. left .. '|received|' .. ARGV[1] .. '|' .. ARGV[2])
return {1, left}
