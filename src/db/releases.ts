// The stock_releases table family: one row per released reservation (at most once per order),
// with `redis_applied_at` set once Redis got the units back (docs/ARCHITECTURE.md section 4).
import type { Pool, PoolClient } from './pool.js';

/** The units an order held, as a release gives them back. */
export interface ReleasedUnits {
  orderId: string;
  productId: string;
  qty: number;
}

/**
 * Records a release in PostgreSQL, exactly once per order: the stock_releases primary key
 * makes a second call a no-op, and only the first gives the units back to products.remaining.
 * Call it inside the transaction that moved the order to payment_failed.
 */
export async function recordRelease(
  client: PoolClient,
  release: ReleasedUnits,
  reason: string,
): Promise<boolean> {
  const inserted = await client.query(
    `INSERT INTO stock_releases (order_id, product_id, qty, reason) VALUES ($1, $2, $3, $4)
     ON CONFLICT (order_id) DO NOTHING`,
    [release.orderId, release.productId, release.qty, reason],
  );
  if (inserted.rowCount !== 1) return false;
  await client.query(
    'UPDATE products SET remaining = remaining + $2, updated_at = now() WHERE id = $1',
    [release.productId, release.qty],
  );
  return true;
}

/** Marks the order's release as applied to Redis (a no-op once it is). */
export async function markReleaseApplied(pool: Pool, orderId: string): Promise<void> {
  await pool.query(
    'UPDATE stock_releases SET redis_applied_at = now() WHERE order_id = $1 AND redis_applied_at IS NULL',
    [orderId],
  );
}

/** A release that reached PostgreSQL but not Redis, with the buyer (whose home shard gets it). */
export interface UnappliedRelease extends ReleasedUnits {
  userId: string;
}

/** Every release not yet applied to Redis, oldest first. */
export async function findUnappliedReleases(pool: Pool): Promise<UnappliedRelease[]> {
  const { rows } = await pool.query<{
    order_id: string;
    product_id: string;
    user_id: string;
    qty: number;
  }>(
    `SELECT r.order_id, r.product_id, o.user_id, r.qty
       FROM stock_releases r JOIN orders o ON o.id = r.order_id
      WHERE r.redis_applied_at IS NULL ORDER BY r.released_at`,
  );
  return rows.map((r) => ({
    orderId: r.order_id,
    productId: r.product_id,
    userId: r.user_id,
    qty: r.qty,
  }));
}

/** The product's released orders and their buyers (rebuildRedis's snapshot). */
export async function findProductReleases(
  client: PoolClient,
  productId: string,
): Promise<{ orderId: string; userId: string }[]> {
  const { rows } = await client.query<{ order_id: string; user_id: string }>(
    `SELECT r.order_id, o.user_id FROM stock_releases r JOIN orders o ON o.id = r.order_id
          WHERE r.product_id = $1`,
    [productId],
  );
  return rows.map((r) => ({ orderId: r.order_id, userId: r.user_id }));
}

/**
 * Marks every release of the product applied: after a rebuild, Redis's stock is recomputed
 * from PostgreSQL, which already counts every release.
 */
export async function markProductReleasesApplied(
  client: PoolClient,
  productId: string,
): Promise<void> {
  await client.query(
    'UPDATE stock_releases SET redis_applied_at = now() WHERE product_id = $1 AND redis_applied_at IS NULL',
    [productId],
  );
}

/** Deletes the product's releases (seed --reset, inside its transaction). */
export async function deleteProductReleases(client: PoolClient, productId: string): Promise<void> {
  await client.query('DELETE FROM stock_releases WHERE product_id = $1', [productId]);
}
