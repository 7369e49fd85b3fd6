// Every Redis key and channel name fsale uses, and nothing else builds one.
//
// All keys of one product share the hash tag `{p:<id>}`, so the buy script (which touches
// stock, per-user counts, the order stream and the idempotency record together) is valid
// on Redis Cluster. Idempotency records therefore live in the product's slot: a key is
// scoped to (product, user, key).
//
// A product seeded with --stock-shards K > 1 has K such key sets: shard 0 under `{p:<id>}`
// (today's layout, so K = 1 is unchanged) and shard s under `{p:<id>~<s>.<n>}`, n chosen so
// that the shards' slots sit on different masters (docs/ARCHITECTURE.md section 10). Each
// buyer has one home shard, which holds their per-user count and idempotency records.

export interface ProductKeys {
  /** Integer: units still available in Redis. */
  stock: string;
  /** Hash: total, limit (per user), starts (ms since epoch). */
  sale: string;
  /** Hash: userId -> units reserved by that user (released units are subtracted). */
  bought: string;
  /** Stream of accepted orders, consumed by `fsale work orders`. Never trimmed. */
  orders: string;
  /** Stream of entries that failed too often to be persisted; `fsale audit` reports them. */
  deadLetter: string;
  /** Set of order ids whose reservation was released (makes the release script idempotent). */
  released: string;
  /**
   * Sharded pub/sub channel (SPUBLISH) carrying this key set's units left after every change.
   * It is in the key set's hash tag, so the scripts publish it on the node that owns their
   * keys and only that node's subscribers get it (no cluster-bus broadcast).
   */
  stockChannel: string;
  /** Hash: orderId -> userId, so GET /order/:id can answer `queued` before the worker persists it. */
  owners: string;
  /**
   * Hash: orderId -> the order that holds its (user, idempotency key). An order accepted
   * again, under another order id, for a key whose record was lost (the first order's id was
   * not keyed the same way: see src/domain/order-id.ts) is superseded by the key's first
   * order: its reservation is released and GET /order/:id answers with the first order.
   */
  superseded: string;
  /** Prefix of the per-(user, key) idempotency records; see `idempotencyKey`. */
  idempotencyPrefix: string;
  /** Prefix of the per-user rate limit counters; see `rateLimitKey`. */
  rateLimitPrefix: string;
  /** Hash: transferId -> "<destination tag>|<units>": units lent to another shard, in transit. */
  transit: string;
  /** Set of transfer ids this shard has received (makes a receive idempotent). */
  received: string;
  /** Integer bumped by every change that can add units here (receive, release, lend). */
  moves: string;
  /** This key set's hash tag, without braces. */
  tag: string;
  /** Which shard of the product this is (0 for an unsharded product), and of how many. */
  shard: number;
  shards: number;
}

/** The hash tag of a product's shard 0 (and of every key of an unsharded product). */
export function baseTag(productId: string): string {
  return `p:${productId}`;
}

/** The hash tag of shard `shard` > 0; `spread` moves it to another slot (see chooseShardTags). */
export function shardTag(productId: string, shard: number, spread: number): string {
  return `p:${productId}~${shard}.${spread}`;
}

/**
 * What a stock publish carries: the units left, prefixed on a sharded product by the shard's
 * index and the shard count ("3/8:120"), so a subscriber can sum the shards; then what changed
 * them: "|sold|<units>" from a buy (or its sync-mode mirror), "|back|<units>" from a release,
 * and for a move between shards "|lent|<id>|<units>" from the lender and
 * "|received|<id>|<units>" from the destination (the units count as in transit in between).
 * A seed publishes the level alone.
 */
export function stockMessagePrefix(keys: ProductKeys): string {
  return keys.shards > 1 ? `${keys.shard}/${keys.shards}:` : '';
}

export interface StockMessage {
  /** This shard's units left (the product's when unsharded). */
  left: number;
  shard: number;
  shards: number;
  /** Units a buy took (sold) or a release gave back (back), if that is what this change was. */
  sold?: number;
  back?: number;
  /** The move this change is one end of, if any. */
  transfer?: { id: string; units: number; end: 'lent' | 'received' };
}

const STOCK_MESSAGE =
  /^(?:(\d+)\/(\d+):)?(-?\d+)(?:\|(sold|back)\|(\d+)|\|(lent|received)\|([^|]+)\|(\d+))?$/;

/** A stock publish read back, or undefined if it is not one. */
export function parseStockMessage(message: string): StockMessage | undefined {
  const match = STOCK_MESSAGE.exec(message);
  if (match === null) return undefined;
  const [, shardText, shardsText, left, change, changed, end, id, moved] = match;
  const shards = Number(shardsText ?? 1);
  const shard = Number(shardText ?? 0);
  if (shard >= shards) return undefined;
  const stock: StockMessage = { left: Number(left), shard, shards };
  if (change === 'sold') stock.sold = Number(changed);
  else if (change === 'back') stock.back = Number(changed);
  else if ((end === 'lent' || end === 'received') && id !== undefined) {
    stock.transfer = { id, units: Number(moved), end };
  }
  return stock;
}

/** Where a key set lives: its hash tag, and which shard of how many it is. */
export interface KeyPlace {
  tag: string;
  shard: number;
  shards: number;
}

/**
 * The keys of an unsharded product (its shard 0), or of the shard `place` names. An unsharded
 * product's keys are built once per process and shared (the buy path asks for them on every
 * request): at most UNSHARDED_CACHED products per prefix are kept, so ids made up by clients
 * cannot grow the cache without bound. A sharded product's keys are kept by its layout.
 */
export function productKeys(prefix: string, productId: string, place?: KeyPlace): ProductKeys {
  if (place !== undefined) return buildKeys(prefix, place);
  let products = unsharded.get(prefix);
  if (products === undefined) {
    products = new Map<string, ProductKeys>();
    unsharded.set(prefix, products);
  }
  let keys = products.get(productId);
  if (keys === undefined) {
    if (products.size >= UNSHARDED_CACHED) products.clear();
    keys = buildKeys(prefix, { tag: baseTag(productId), shard: 0, shards: 1 });
    products.set(productId, keys);
  }
  return keys;
}

const UNSHARDED_CACHED = 4_096;
const unsharded = new Map<string, Map<string, ProductKeys>>();

function buildKeys(prefix: string, place: KeyPlace): ProductKeys {
  const tag = `${prefix}:{${place.tag}}`;
  // Every property written here, in one literal: a fixed shape, fast to read on the hot path.
  return Object.freeze({
    tag: place.tag,
    shard: place.shard,
    shards: place.shards,
    transit: `${tag}:transit`,
    received: `${tag}:received`,
    moves: `${tag}:moves`,
    stock: `${tag}:stock`,
    sale: `${tag}:sale`,
    bought: `${tag}:bought`,
    orders: `${tag}:orders`,
    deadLetter: `${tag}:dead`,
    released: `${tag}:released`,
    stockChannel: `${tag}:stock-feed`,
    owners: `${tag}:owners`,
    superseded: `${tag}:superseded`,
    idempotencyPrefix: `${tag}:idem:`,
    rateLimitPrefix: `${tag}:rate:`,
  });
}

/**
 * The idempotency record of one (product, user, key). The key is length-prefixed by user so
 * that user "a" with key "b:c" and user "a:b" with key "c" can never collide.
 */
export function idempotencyKey(keys: ProductKeys, userId: string, key: string): string {
  return `${keys.idempotencyPrefix}${userId.length}:${userId}:${key}`;
}

/** The per-user request counter of the buy rate limit (fixed window, per product). */
export function rateLimitKey(keys: ProductKeys, userId: string): string {
  return `${keys.rateLimitPrefix}${userId}`;
}

/**
 * The sharded pub/sub channel carrying a product's order status changes (JSON, see
 * OrderEvent), in the hash tag of the product's shard 0: on a cluster it lives on one node with
 * that shard's stock channel, so one SSUBSCRIBE takes both.
 */
export function orderEventsChannel(prefix: string, productId: string): string {
  return `${prefix}:{${baseTag(productId)}}:order-feed`;
}

/** Patterns matching every key of one product (its shards too), for `seed --reset`. */
export function productKeyPatterns(prefix: string, productId: string): string[] {
  return [`${prefix}:{${baseTag(productId)}}:*`, `${prefix}:{${baseTag(productId)}~*}:*`];
}

/** Set of the product ids seeded under a prefix: the streams the order workers read. */
export function productsKey(prefix: string): string {
  return `${prefix}:products`;
}

/** The consumer group the order workers share on every product stream. */
export const ORDER_GROUP = 'persist';
