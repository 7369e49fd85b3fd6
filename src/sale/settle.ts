import { transitionOrder, type OrderRecord } from '../db/orders.js';
import { recordPayment, type PaymentAttempt } from '../db/payments.js';
import { inTransaction } from '../db/pool.js';
import { recordRelease } from '../db/releases.js';
import type { StoredOrderStatus } from '../domain/order-status.js';
import { publishOrderEvent } from './order-events.js';
import type { Stores } from '../stores.js';
import { applyReleaseToRedis } from './release.js';

// Moving an order to its next status, shared by the payment worker and reconcile. Each step is
// one PG transaction around a guarded transition; what follows the commit (Redis release,
// publish) is idempotent and re-applied by reconcile if a crash cuts it short.

async function announce(ctx: Stores, order: OrderRecord, status: StoredOrderStatus): Promise<void> {
  await publishOrderEvent(ctx.redis, ctx.keyPrefix, {
    orderId: order.id,
    userId: order.userId,
    productId: order.productId,
    status,
    at: Date.now(),
  }).catch(() => undefined); // a missed notification is only late news: GET /order/:id has the truth
}

/** `from` → paid. False when the order had already left `from` (a stale worker). */
export async function settlePaid(
  ctx: Stores,
  order: OrderRecord,
  from: StoredOrderStatus,
  attempt: PaymentAttempt | undefined,
): Promise<boolean> {
  const moved = await inTransaction(ctx.pool, async (client) => {
    if (!(await transitionOrder(client, order.id, from, 'paid'))) return false;
    if (attempt !== undefined) await recordPayment(client, order.id, attempt);
    return true;
  });
  if (moved) await announce(ctx, order, 'paid');
  return moved;
}

/** `from` → payment_failed, and the reservation released exactly once in PG then Redis. */
export async function settleFailed(
  ctx: Stores,
  order: OrderRecord,
  from: StoredOrderStatus,
  reason: string,
  attempt: PaymentAttempt | undefined,
): Promise<boolean> {
  const reservation = {
    orderId: order.id,
    productId: order.productId,
    userId: order.userId,
    qty: order.qty,
  };
  const moved = await inTransaction(ctx.pool, async (client) => {
    if (!(await transitionOrder(client, order.id, from, 'payment_failed'))) return false;
    if (attempt !== undefined) await recordPayment(client, order.id, attempt);
    await recordRelease(client, reservation, reason);
    return true;
  });
  if (!moved) return false;
  // If this fails (Redis down), the release row stays unapplied and reconcile finishes it.
  await applyReleaseToRedis(ctx.redis, ctx.pool, ctx.keyPrefix, reservation).catch(() => undefined);
  await announce(ctx, order, 'payment_failed');
  return true;
}

/** pending → needs_reconciliation: the outcome is unknown, the stock stays held. */
export async function settleUnknown(
  ctx: Stores,
  order: OrderRecord,
  attempt: PaymentAttempt,
): Promise<boolean> {
  const moved = await inTransaction(ctx.pool, async (client) => {
    if (!(await transitionOrder(client, order.id, 'pending', 'needs_reconciliation'))) return false;
    await recordPayment(client, order.id, attempt);
    return true;
  });
  if (moved) await announce(ctx, order, 'needs_reconciliation');
  return moved;
}
