--[[
  Mirrors one order committed by `serve --mode sync` into Redis after its PostgreSQL COMMIT:
  the same stock, per-user count, owner index and stock publish the buy script makes, so the
  live stock (SSE, GET /products/:id), the sold-out cache, the release script and `fsale audit`
  see a sync-mode sale exactly as a queue-mode one. Idempotent per order (the owner index
  entry is the marker), so a retry after a lost reply never takes the units twice.

  KEYS[1] stock    integer units left                 ({p:<id>}:stock)
  KEYS[2] bought   hash userId -> units reserved      ({p:<id>}:bought)
  KEYS[3] owners   hash orderId -> userId             ({p:<id>}:owners)

  ARGV[1] order id
  ARGV[2] user id
  ARGV[3] qty
  ARGV[4] stock channel (sharded pub/sub, in this key set's hash tag)

  Returns {applied (1 | 0), units left}. Applied 0 means this order was mirrored before.
]]
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then
  return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local left = redis.call('DECRBY', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])
redis.call('SPUBLISH', ARGV[4], left .. '|sold|' .. ARGV[3])
return {1, left}
