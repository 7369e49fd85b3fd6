// The payments table family: the payment worker's job queue (pending orders, leased) and the
// history of every charge attempt.
import {
  ORDER_AMOUNT_CENTS_SQL,
  toPricedOrder,
  type PricedOrder,
  type PricedOrderRow,
} from './orders.js';
import type { Pool, PoolClient } from './pool.js';

/** A pending order leased to one payment worker, with what it costs. */
export interface PaymentJob extends PricedOrder {
  /**
   * It had a lease that ran out: a worker died or hung with it, or it was handed back for
   * later (extendPaymentLease) and is due. A job never leased before, or whose lease was
   * ended (endPaymentLeases), has none.
   */
  leaseExpired: boolean;
}

/**
 * Leases up to `limit` pending orders whose lease ran out (or never existed), oldest first,
 * for `leaseMs`: a worker that dies leaves them to the next one once the lease is over.
 */
export async function leasePaymentJobs(
  pool: Pool,
  limit: number,
  leaseMs: number,
): Promise<PaymentJob[]> {
  const { rows } = await pool.query<PricedOrderRow & { lease_expired: boolean }>(
    `WITH due AS (
       SELECT id, payment_lease_until IS NOT NULL AS lease_expired FROM orders
        WHERE status = 'pending'
          AND (payment_lease_until IS NULL OR payment_lease_until < now())
        ORDER BY persisted_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED)
     UPDATE orders o
        SET payment_lease_until = now() + $2 * interval '1 millisecond',
            payment_attempts = payment_attempts + 1
       FROM products p, due
      WHERE p.id = o.product_id AND o.id = due.id
    RETURNING o.id, o.product_id, o.user_id, o.qty, o.status, ${ORDER_AMOUNT_CENTS_SQL} AS amount_cents,
              due.lease_expired`,
    [limit, leaseMs],
  );
  return rows.map((row) => ({ ...toPricedOrder(row), leaseExpired: row.lease_expired }));
}

/** Keeps a still-pending job leased for `forMs` from now: no worker charges it before then. */
export async function extendPaymentLease(pool: Pool, orderId: string, forMs: number) {
  await pool.query(
    `UPDATE orders SET payment_lease_until = now() + $2 * interval '1 millisecond'
      WHERE id = $1 AND status = 'pending'`,
    [orderId, forMs],
  );
}

/**
 * Ends the leases of still-pending jobs, so another worker can take them at once; answers how
 * many it ended.
 */
export async function endPaymentLeases(pool: Pool, orderIds: readonly string[]): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE orders SET payment_lease_until = NULL WHERE id = ANY($1::uuid[]) AND status = 'pending'`,
    [orderIds],
  );
  return rowCount ?? 0;
}

export interface PaymentAttempt {
  outcome: 'paid' | 'declined' | 'retryable' | 'unknown';
  httpStatus?: number | undefined;
  chargeId?: string | undefined;
  latencyMs: number;
}

/** Appends one row to the order's payment history (attempt numbers are per order). */
export async function recordPayment(
  db: Pool | PoolClient,
  orderId: string,
  attempt: PaymentAttempt,
): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await db.query(
        `INSERT INTO payments (order_id, attempt, outcome, http_status, gateway_charge_id, latency_ms)
         SELECT $1, coalesce(max(attempt), 0) + 1, $2, $3, $4, $5 FROM payments WHERE order_id = $1`,
        [
          orderId,
          attempt.outcome,
          attempt.httpStatus ?? null,
          attempt.chargeId ?? null,
          attempt.latencyMs,
        ],
      );
      return;
    } catch (error) {
      // Two workers recording at once (a stale one and its replacement) race for the number.
      if ((error as { code?: string }).code !== '23505' || tries >= 3) throw error;
    }
  }
}

/** The product's orders with more than one distinct successful charge recorded. */
export async function countDoublePaidOrders(pool: Pool, productId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT p.order_id FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE o.product_id = $1 AND p.outcome = 'paid' GROUP BY p.order_id HAVING count(DISTINCT p.gateway_charge_id) > 1) d`,
    [productId],
  );
  return rows[0]?.n ?? 0;
}

/** Deletes the payments of the product's orders (seed --reset, inside its transaction). */
export async function deleteProductPayments(client: PoolClient, productId: string): Promise<void> {
  await client.query(
    'DELETE FROM payments WHERE order_id IN (SELECT id FROM orders WHERE product_id = $1)',
    [productId],
  );
}
