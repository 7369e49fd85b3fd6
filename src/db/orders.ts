import { assertTransition, type StoredOrderStatus } from '../domain/order-status.js';
import type { Pool, PoolClient } from './pool.js';

export interface OrderRecord {
  id: string;
  productId: string;
  userId: string;
  qty: number;
  status: StoredOrderStatus;
}

/**
 * The only way an order changes status: a guarded UPDATE that succeeds only if the order is
 * still in `from`. Returns false when another worker (or a newer state) got there first, so a
 * stale worker can never overwrite a newer state. Throws on a transition not in TRANSITIONS.
 */
export async function transitionOrder(
  db: Pool | PoolClient,
  orderId: string,
  from: StoredOrderStatus,
  to: StoredOrderStatus,
): Promise<boolean> {
  assertTransition(from, to);
  const result = await db.query(
    `UPDATE orders SET status = $3, updated_at = now(), payment_lease_until = NULL
      WHERE id = $1 AND status = $2`,
    [orderId, from, to],
  );
  return result.rowCount === 1;
}

/**
 * What an order costs, in cents, over `orders o JOIN products p`: the amount the payment worker
 * charges and reconcile voids, so both name the same charge.
 */
export const ORDER_AMOUNT_CENTS_SQL = '(p.price_cents * o.qty)::bigint';

interface OrderRow {
  id: string;
  product_id: string;
  user_id: string;
  qty: number;
  status: StoredOrderStatus;
}

export function toOrderRecord(row: OrderRow): OrderRecord {
  return {
    id: row.id,
    productId: row.product_id,
    userId: row.user_id,
    qty: row.qty,
    status: row.status,
  };
}
