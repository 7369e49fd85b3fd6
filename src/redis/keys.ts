// Every Redis key and channel name fsale uses, and nothing else builds one.
//
// All keys of one product share the hash tag `{p:<id>}`, so the buy script (which touches
// stock, per-user counts, the order stream and the idempotency record together) is valid
// on Redis Cluster. Idempotency records therefore live in the product's slot: a key is
// scoped to (product, user, key).

export const PRODUCT_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const USER_ID = /^[A-Za-z0-9_.@-]{1,128}$/;

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
  /** Pub/sub channel carrying the remaining stock after every change. */
  stockChannel: string;
  /** Hash: orderId -> userId, so GET /order/:id can answer `queued` before the worker persists it. */
  owners: string;
  /**
   * Hash: orderId -> the order that holds its (user, idempotency key). An order accepted
   * again under a key whose record was lost is superseded by the key's first order: its
   * reservation is released and GET /order/:id answers with the first order.
   */
  superseded: string;
  /** Prefix of the per-(user, key) idempotency records; see `idempotencyKey`. */
  idempotencyPrefix: string;
  /** Prefix of the per-user rate limit counters; see `rateLimitKey`. */
  rateLimitPrefix: string;
}

/** The product id of a stock channel name, or undefined if it is not one under `prefix`. */
export function productOfStockChannel(prefix: string, channel: string): string | undefined {
  const head = `${prefix}:stock:`;
  return channel.startsWith(head) ? channel.slice(head.length) : undefined;
}

export function productKeys(prefix: string, productId: string): ProductKeys {
  const tag = `${prefix}:{p:${productId}}`;
  return {
    stock: `${tag}:stock`,
    sale: `${tag}:sale`,
    bought: `${tag}:bought`,
    orders: `${tag}:orders`,
    deadLetter: `${tag}:dead`,
    released: `${tag}:released`,
    stockChannel: `${prefix}:stock:${productId}`,
    owners: `${tag}:owners`,
    superseded: `${tag}:superseded`,
    idempotencyPrefix: `${tag}:idem:`,
    rateLimitPrefix: `${tag}:rate:`,
  };
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

/** Pattern matching every product's stock channel under a prefix (one subscription per process). */
export function stockChannelPattern(prefix: string): string {
  return `${prefix}:stock:*`;
}

/** The channel carrying every order status change under a prefix (JSON, see OrderEvent). */
export function orderEventsChannel(prefix: string): string {
  return `${prefix}:order-events`;
}

/** Pattern matching every key of one product, for `seed --reset`. */
export function productKeyPattern(prefix: string, productId: string): string {
  return `${prefix}:{p:${productId}}:*`;
}

/** Set of the product ids seeded under a prefix: the streams the order workers read. */
export function productsKey(prefix: string): string {
  return `${prefix}:products`;
}

/** The consumer group the order workers share on every product stream. */
export const ORDER_GROUP = 'persist';
