--[[
  Reserves stock for one buy, atomically, in one round trip: idempotency, product, rate
  limit, sale window, stock, per-user limit, order stream, owner index, stock publish.

  KEYS[1] stock      integer units left                          ({p:<id>}:stock)
  KEYS[2] sale       hash total, limit, starts (ms)              ({p:<id>}:sale)
  KEYS[3] bought     hash userId -> units reserved               ({p:<id>}:bought)
  KEYS[4] orders     stream of accepted orders                   ({p:<id>}:orders)
  KEYS[5] idem       this (user, key)'s idempotency record       ({p:<id>}:idem:...)
  KEYS[6] rate       this user's request counter, fixed window   ({p:<id>}:rate:...)
  KEYS[7] owners     hash orderId -> userId (GET /order/:id before persistence)

  ARGV[1] order id: keyed from (product, user, qty, key) by the API, the same for every retry
          (src/domain/order-id.ts)
  ARGV[2] user id
  ARGV[3] qty (integer >= 1)
  ARGV[4] idempotency key
  ARGV[5] request fingerprint (same key + different fingerprint = mismatch)
  ARGV[6] stock channel (sharded pub/sub, in this key set's hash tag)
  ARGV[7] rate limit: max requests per window (0 = off)
  ARGV[8] rate limit window, ms
  ARGV[9] shards the caller expects the product to have (its cached layout)
  ARGV[10] prefix of the stock publish: '' for an unsharded product, '<shard>/<shards>:' otherwise
  ARGV[11] '1' when the reply counts only once a replica has the writes (`--durability
           replica`: a WAIT follows the script), else '0'

  Returns {code, replayed (0|1), orderId, extra}:
    code: see BuyCode in src/sale/buy.ts
    extra: units left after an accept, ms until the window resets for RATE_LIMITED, this
      shard's units for SHARD_EMPTY, else -1

  A sharded product (docs/ARCHITECTURE.md section 10) runs this on the buyer's home shard.
  When the shard has fewer units than asked, it answers SHARD_EMPTY instead of sold out, after
  the per-user limit (a buyer at their limit is told so, and never makes the API borrow units
  for nothing); the API then moves units here from other shards, or finds them all empty.
  LAYOUT_CHANGED: the product was seeded again with another shard count since the caller
  read its layout.

  The sale window is checked against Redis's own clock (TIME), not the API host's: with many
  API hosts, one whose clock runs fast must not open the sale early. The order's accepted time
  comes from the same clock.

  Idempotency record: "<code>|<orderId>|<fingerprint>" (parsed by src/sale/buy.ts too). Only
  an accept is recorded, without expiry: it lives as long as the product's keys (until `seed
  --reset`), and `reconcile --rebuild-redis` restores it from PostgreSQL. A rejection (sold
  out, insufficient stock, limit reached, not open, unknown product, rate limited) reserved
  nothing and is not recorded: a retry with the same key is a new attempt, on the sold-out
  fast path as here, and it may win a unit that a release gave back.

  A lost record (a Redis restored from an older backup, a key deleted by hand): when the owner
  index already names this user for ARGV[1], this very request (same product, user, qty and
  key) was accepted before. The record is written again and the accept replayed; nothing is
  reserved. When Redis lost every write of the buy together (an AOF everysec crash, an
  asynchronous failover), the retry reserves again under the same order id: if the order
  worker had persisted it, it finds the id in PostgreSQL and takes the entry as a redelivery,
  so the unit it holds in Redis is the one PostgreSQL counts.
]]
local ACCEPTED, SOLD_OUT, INSUFFICIENT, LIMIT, NOT_OPEN, UNKNOWN, MISMATCH, RATE_LIMITED,
  LAYOUT_CHANGED, SHARD_EMPTY = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

local record = redis.call('GET', KEYS[5])
if record then
  local code, order_id, fingerprint = string.match(record, '^(%d+)|([^|]*)|(.*)$')
  if fingerprint ~= ARGV[5] then return {MISMATCH, 0, '', -1} end
  -- Under `--durability replica`, written again as it is: the replay is then a write of this
  -- connection, which the WAIT after the script covers. The record may be on the master alone
  -- (its first answer a 503), and the replay may come through another connection than the buy.
  if ARGV[11] == '1' then redis.call('SET', KEYS[5], record, 'KEEPTTL') end
  return {tonumber(code), 1, order_id, -1}
end
if redis.call('HGET', KEYS[7], ARGV[1]) == ARGV[2] then
  redis.call('SET', KEYS[5], ACCEPTED .. '|' .. ARGV[1] .. '|' .. ARGV[5])
  return {ACCEPTED, 1, ARGV[1], -1}
end

local sale = redis.call('HMGET', KEYS[2], 'limit', 'starts', 'shards')
if not sale[1] then return {UNKNOWN, 0, '', -1} end
local shards = tonumber(sale[3] or '1')
if shards ~= tonumber(ARGV[9]) then return {LAYOUT_CHANGED, 0, '', shards} end

-- After the replay (a retry reserves nothing and costs one GET, and a SET under durability)
-- and the product check (an unknown product must leave no key behind).
local max_rate = tonumber(ARGV[7])
if max_rate > 0 then
  local count = redis.call('INCR', KEYS[6])
  if count == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[8]) end
  if count > max_rate then
    return {RATE_LIMITED, 0, '', redis.call('PTTL', KEYS[6])}
  end
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now < tonumber(sale[2]) then return {NOT_OPEN, 0, '', -1} end

local qty = tonumber(ARGV[3])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local over_limit = function()
  return tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') + qty > tonumber(sale[1])
end
if stock < qty and shards > 1 then
  if over_limit() then return {LIMIT, 0, '', -1} end
  return {SHARD_EMPTY, 0, '', stock}
end
if stock <= 0 then return {SOLD_OUT, 0, '', -1} end
if stock < qty then return {INSUFFICIENT, 0, '', -1} end
if over_limit() then return {LIMIT, 0, '', -1} end

local order_id = ARGV[1]
local left = redis.call('DECRBY', KEYS[1], qty)
redis.call('HINCRBY', KEYS[3], ARGV[2], qty)
redis.call('XADD', KEYS[4], '*', 'id', order_id, 'user', ARGV[2], 'qty', ARGV[3],
  'key', ARGV[4], 'at', now)
redis.call('HSET', KEYS[7], order_id, ARGV[2])
redis.call('SET', KEYS[5], ACCEPTED .. '|' .. order_id .. '|' .. ARGV[5])
redis.call('SPUBLISH', ARGV[6], ARGV[10] .. left .. '|sold|' .. ARGV[3])
return {ACCEPTED, 0, order_id, left}
