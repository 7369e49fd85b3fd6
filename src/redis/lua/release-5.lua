--[[
  Gives a released reservation back to the sale, exactly once per order (idempotent: running
  it again for the same order, even concurrently, changes nothing). On a sharded product it
  runs on the order's shard, the buyer's home shard, where the buy took the units.

  KEYS[1] stock     integer units left                 ({p:<id>}:stock)
  KEYS[2] bought    hash userId -> units reserved      ({p:<id>}:bought)
  KEYS[3] released  set of order ids already released  ({p:<id>}:released)
  KEYS[4] sale      hash total, limit, starts          ({p:<id>}:sale)
  KEYS[5] moves     integer bumped by every change that adds units here

  ARGV[1] order id
  ARGV[2] user id
  ARGV[3] qty
  ARGV[4] stock channel (sharded pub/sub, in this key set's hash tag)
  ARGV[5] prefix of the stock publish: '' unsharded, '<shard>/<shards>:' otherwise

  Returns {applied (1 | 0), units left}. Applied 0 means this order was already released.
]]
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then
  return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local qty = tonumber(ARGV[3])
local left = redis.call('INCRBY', KEYS[1], qty)
-- Never above the product's total: a release can only return what a buy took.
local total = tonumber(redis.call('HGET', KEYS[4], 'total') or left)
if left > total then
  redis.call('SET', KEYS[1], total)
  left = total
end
redis.call('INCR', KEYS[5])
local bought = redis.call('HINCRBY', KEYS[2], ARGV[2], -qty)
if bought <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('SPUBLISH', ARGV[4], ARGV[5] .. left .. '|back|' .. qty)
return {1, left}
