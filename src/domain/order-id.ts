import { hash, randomFillSync } from 'node:crypto';

// Order ids. A buy's order id is derived from what names the buy, (product, user, quantity,
// Idempotency-Key), with a secret: a retry computes the id of the first attempt, so whatever
// Redis lost in between (the key's record, or every write of the buy after a rollback), the
// retry names the same order, and the buy script and the order worker can recognise it
// (docs/ARCHITECTURE.md section 6). The quantity is part of the name because the buy script,
// finding the id in its owner index, rewrites the key's record from this request: the id
// must prove the first request had the same fingerprint (product and quantity).
//
// The ids are UUIDs of version 8 (RFC 9562, "custom"): 122 bits of a keyed SHA-256, not
// time-ordered. Nothing relies on their order (PostgreSQL pages by id only as a keyset, and
// the payment queue is ordered by persisted_at); the time of an order is its accepted_at.
// Unguessable without the secret: a user cannot name another user's order.

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** What names one keyed buy: its idempotency scope (product, user, key) and its quantity. */
export interface KeyedBuy {
  productId: string;
  userId: string;
  qty: number;
  idempotencyKey: string;
}

/** The order id of a keyed buy, the same for every attempt with the same key and payload. */
export type OrderIdOf = (buy: KeyedBuy) => string;

/**
 * Order ids keyed with a secret of their own derived from the API's JWT secret, which every API
 * process of a deployment shares (domain-separated: an order id reveals nothing usable as a
 * token key, and no token signature is an order id). API processes with different secrets
 * give a retry another id; the order worker's supersede path still keeps one order per key.
 *
 * One SHA-256 over secret and name: about 2 µs an id on this (loaded, 2-core) machine, as
 * much as newOrderId below; an HMAC object per id costs 2-3 times that. Prefix-keying a hash is safe here: the output is cut
 * to 122 bits, so nothing extends it, and every name parses one way only (product and user
 * ids cannot hold '|', the quantity is digits, the key is the rest).
 */
export function keyedOrderIds(jwtSecret: string): OrderIdOf {
  const secret = hash('sha256', `fsale order id v1\0${jwtSecret}`, 'hex');
  return ({ productId, userId, qty, idempotencyKey }) =>
    uuid8(hash('sha256', `${secret}|${productId}|${userId}|${qty}|${idempotencyKey}`, 'hex'));
}

/** The first 128 bits of a hex digest as a UUID, version 8, variant 10. */
function uuid8(hex: string): string {
  const variant = ((parseInt(hex.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return (
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-` +
    `${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
  );
}

// UUIDv7 (RFC 9562): 48-bit ms timestamp, version 7, then random bits. The ids of orders
// accepted before keyed ids, and of orders tests and benchmarks append to a stream
// themselves. Random bytes come from a pool refilled in bulk: one getrandom call per 512 ids.
const POOL_IDS = 512;
const pool = Buffer.alloc(POOL_IDS * 10);
let offset = pool.length;

export function newOrderId(now = Date.now()): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = pool.subarray(offset, offset + 10);
  offset += 10;
  const ts = now.toString(16).padStart(12, '0');
  const h = (i: number) => HEX[r[i] ?? 0] ?? '00';
  return (
    `${ts.slice(0, 8)}-${ts.slice(8, 12)}-` +
    `7${HEX[(r[0] ?? 0) & 0x0f]?.[1] ?? '0'}${h(1)}-` +
    `${HEX[((r[2] ?? 0) & 0x3f) | 0x80] ?? '80'}${h(3)}-` +
    `${h(4)}${h(5)}${h(6)}${h(7)}${h(8)}${h(9)}`
  );
}
