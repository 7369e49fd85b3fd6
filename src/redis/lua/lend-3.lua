--[[
  Lends units of one shard of a sharded product to another shard (docs/ARCHITECTURE.md
  section 10), or, with a need of 0, only reads the shard. The units leave this shard's stock
  and wait in its transit hash until the destination has received them (receive-3.lua) and
  the lender's entry is removed (HDEL): a crash in between leaves them in transit, where the
  next borrower or `fsale reconcile` completes the move and `fsale audit` counts them.

  KEYS[1] stock    integer units left                       ({p:<id>~s.n}:stock)
  KEYS[2] transit  hash transferId -> "<dest tag>|<units>"  ({p:<id>~s.n}:transit)
  KEYS[3] moves    integer bumped by every change that adds units here or lends them

  ARGV[1] transfer id (unique)
  ARGV[2] destination shard's hash tag
  ARGV[3] units the destination needs (0: read only)
  ARGV[4] the product's shard count: a lender keeps at most its share beyond the need
  ARGV[5] stock channel (sharded pub/sub, in this key set's hash tag)
  ARGV[6] prefix of the stock publish ('<shard>/<shards>:')

  The stock publish names the transfer ("<left>|lent|<id>|<units>"), so a subscriber counts the
  units as in transit until the destination's publish says it received them: the product's
  total does not dip while units move.

  Returns {units lent, units left here, transfers in transit from here, moves}.
]]
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local need = tonumber(ARGV[3])
local moves = tonumber(redis.call('GET', KEYS[3]) or '0')
if stock <= 0 or need <= 0 then
  return {0, stock, redis.call('HLEN', KEYS[2]), moves}
end
-- The need, and at least this shard's share of what it has, so the tail moves in few steps.
local lend = math.min(stock, math.max(need, math.ceil(stock / tonumber(ARGV[4]))))
local left = redis.call('DECRBY', KEYS[1], lend)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. lend)
moves = redis.call('INCR', KEYS[3])
redis.call('SPUBLISH', ARGV[5], ARGV[6] .. left .. '|lent|' .. ARGV[1] .. '|' .. lend)
return {lend, left, redis.call('HLEN', KEYS[2]), moves}
