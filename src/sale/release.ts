import type { Redis } from '../redis/client.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { homeShard, readLayout } from '../redis/sale-state.js';
import { releaseUnits } from '../redis/scripts.js';

export interface Reservation {
  orderId: string;
  productId: string;
  userId: string;
  qty: number;
}

/**
 * Records a release in PostgreSQL, exactly once per order: the stock_releases primary key
 * makes a second call a no-op, and only the first gives the units back to products.remaining.
 * Call it inside the transaction that moved the order to payment_failed.
 */
export async function recordRelease(
  client: PoolClient,
  reservation: Reservation,
  reason: string,
): Promise<boolean> {
  const inserted = await client.query(
    `INSERT INTO stock_releases (order_id, product_id, qty, reason) VALUES ($1, $2, $3, $4)
     ON CONFLICT (order_id) DO NOTHING`,
    [reservation.orderId, reservation.productId, reservation.qty, reason],
  );
  if (inserted.rowCount !== 1) return false;
  await client.query(
    'UPDATE products SET remaining = remaining + $2, updated_at = now() WHERE id = $1',
    [reservation.productId, reservation.qty],
  );
  return true;
}

/**
 * Gives the units back in Redis (stock, the user's count, a stock publish that re-opens a
 * sold-out product) with the idempotent release script, then marks the release applied. Safe
 * to run any number of times, concurrently: the script applies each order once.
 */
export async function applyReleaseToRedis(
  redis: Redis,
  pool: Pool,
  prefix: string,
  reservation: Reservation,
): Promise<boolean> {
  // The order's units came from its buyer's home shard (on a sharded product), so they go back there.
  const layout = await readLayout(redis, prefix, reservation.productId);
  const applied = await releaseUnits(redis, homeShard(layout, reservation.userId), reservation);
  await pool.query(
    'UPDATE stock_releases SET redis_applied_at = now() WHERE order_id = $1 AND redis_applied_at IS NULL',
    [reservation.orderId],
  );
  return applied;
}
