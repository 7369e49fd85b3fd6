// `fsale serve --mode sync` (Approach 1): the buy is one PostgreSQL transaction, the
// function fsale_sync_buy in sql/000004_idempotency_is_the_order.sql (idempotency, sale window,
// per-user limit, conditional stock UPDATE, the order INSERTed as `pending` so the payment
// worker charges it as in queue mode). PostgreSQL is the gate: Redis can never make it
// oversell, whatever Redis says.
//
// Redis still carries what the rest of the system reads: the live stock (SSE, GET /products,
// the sold-out cache of every API process), the per-user counts the release script gives
// back, and the numbers `fsale audit` checks. So after each COMMIT that accepted an order the
// API mirrors it into Redis with the mirror script: the same DECRBY, per-user HINCRBY, owner
// entry and stock PUBLISH the queue-mode buy script makes. Deltas, not PG's absolute
// `remaining`: they commute with the release script's INCRBY and with other processes'
// mirrors, where an absolute value written after an unordered COMMIT could go backwards.
// The script is idempotent per order (HSETNX on the owner index), so a retry never takes the
// units twice.
//
// Failures between COMMIT and mirror:
// - Redis unreachable or the reply lost: the order is committed, so the client still gets its
//   201; the mirror is kept in memory and retried with backoff until Redis answers.
// - The API process dies between COMMIT and the mirror (nothing in memory survives): Redis
//   shows the order's units as still available and the user's count one order short. No
//   oversell can follow (PostgreSQL decides every sync buy); the sold-out flag and the live
//   stock are late. `fsale audit` reports it ("Redis and PG stock agree" and conservation
//   fail, the PG guard holds) and `fsale reconcile --rebuild-redis` repairs it: it recomputes
//   stock from products.remaining and the per-user counts from the orders that hold stock,
//   which include every committed sync order. It must run while the API is stopped (a mirror
//   applied during the rebuild would be overwritten), as for any rebuild.
import type { Redis } from '../redis/client.js';
import { findOrderByKey, placeSyncOrder } from '../db/orders.js';
import type { Pool } from '../db/pool.js';
import { productKeys, type ProductKeys } from '../redis/keys.js';
import { countBuyAttempt, mirrorUnits, refundBuyAttempt } from '../redis/scripts.js';
import type { Stores } from '../stores.js';
import {
  BuyCode,
  DEFAULT_BUY_POLICY,
  fingerprint,
  storedAnswer,
  type BuyPolicy,
  type BuyRequest,
  type BuyResult,
} from './buy.js';

export interface MirroredOrder {
  orderId: string;
  productId: string;
  userId: string;
  qty: number;
}

export interface SyncBuyContext extends Stores {
  mirror: StockMirror;
}

/** Answers that are not a new attempt: the rate limiter gives their count back. */
const NOT_AN_ATTEMPT: ReadonlySet<BuyCode> = new Set([
  BuyCode.IdempotencyMismatch,
  BuyCode.UnknownProduct,
]);

/**
 * One sync-mode buy: the rate limit in Redis (counted first, applied by PostgreSQL after the
 * replay and product checks, in the buy script's order), then the PostgreSQL transaction,
 * then, for a new order, its mirror into Redis.
 */
export async function placeOrder(
  ctx: SyncBuyContext,
  request: BuyRequest,
  policy: BuyPolicy = DEFAULT_BUY_POLICY,
): Promise<BuyResult> {
  const keys = productKeys(ctx.keyPrefix, request.productId);
  let verdict = -1;
  let retryAfterMs = 0;
  if (policy.rateLimit > 0) {
    ({ verdict, retryAfterMs } = await countBuyAttempt(ctx.redis, keys, request.userId, policy));
  }
  const row = await placeSyncOrder(ctx.pool, {
    orderId: request.orderId,
    productId: request.productId,
    userId: request.userId,
    qty: request.qty,
    idempotencyKey: request.idempotencyKey,
    rateLimited: verdict === 0,
  });
  const code = row.code as BuyCode;
  const result: BuyResult = {
    code,
    replayed: row.replayed,
    orderId: row.orderId,
    remaining: row.remaining,
    retryAfterMs: code === BuyCode.RateLimited ? retryAfterMs : 0,
  };
  if (verdict !== -1 && (result.replayed || NOT_AN_ATTEMPT.has(code))) {
    // Best effort: a lost refund only makes this user's window one request shorter.
    void refundBuyAttempt(ctx.redis, keys, request.userId).catch(() => undefined);
  }
  // A replayed accept is mirrored too (a no-op when it was, the mirror being idempotent per
  // order): the first answer may have been lost between COMMIT and the mirror (503
  // outcome_unknown), and this retry is then the first to know the order exists.
  if (code === BuyCode.Accepted) {
    await ctx.mirror.apply({
      orderId: result.orderId,
      productId: request.productId,
      userId: request.userId,
      qty: request.qty,
    });
  }
  return result;
}

/**
 * The sold-out fast path of sync mode: the answer of (product, user, key) is its order, read
 * from PostgreSQL without a transaction, or undefined when the key holds none (the caller
 * answers sold out without recording it, as in queue mode).
 */
export async function storedSyncAnswer(
  pool: Pool,
  request: Pick<BuyRequest, 'productId' | 'userId' | 'qty' | 'idempotencyKey'>,
): Promise<BuyResult | undefined> {
  const order = await findOrderByKey(pool, request);
  if (order === undefined) return undefined;
  return storedAnswer(
    request,
    BuyCode.Accepted,
    order.id,
    fingerprint(request.productId, order.qty),
  );
}

/** Applies the mirror script for one committed order. Idempotent. */
export async function mirrorOrder(
  redis: Redis,
  prefix: string,
  order: MirroredOrder,
  keys: ProductKeys = productKeys(prefix, order.productId),
): Promise<boolean> {
  return mirrorUnits(redis, keys, order);
}

/**
 * Mirrors committed sync-mode orders into Redis; one that fails (Redis down, reply lost) is
 * kept and retried with backoff until it applies. See the comment at the top of this file for
 * what a crash loses and how it is repaired.
 */
export class StockMirror {
  private readonly pending = new Map<string, MirroredOrder>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly maxBackoffMs = 2_000,
  ) {}

  /** Orders committed in PostgreSQL whose mirror has not reached Redis yet. */
  get backlog(): number {
    return this.pending.size;
  }

  /** Mirrors the order now; on failure keeps it for a retry (never throws). */
  async apply(order: MirroredOrder): Promise<void> {
    try {
      await mirrorOrder(this.redis, this.prefix, order);
    } catch {
      this.pending.set(order.orderId, order);
      this.schedule();
    }
  }

  /** Retries what is pending once more, then stops retrying. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.retry();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return;
    const delay = Math.min(this.maxBackoffMs, 50 * 2 ** Math.min(this.failures, 10));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.retry();
    }, delay);
    this.timer.unref();
  }

  private async retry(): Promise<void> {
    for (const [orderId, order] of this.pending) {
      try {
        await mirrorOrder(this.redis, this.prefix, order);
        this.pending.delete(orderId);
      } catch {
        this.failures += 1;
        this.schedule();
        return;
      }
    }
    this.failures = 0;
  }
}
