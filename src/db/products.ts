import type { Pool } from './pool.js';

// The products table family as the API reads it (seed and sync buys write their own SQL still:
// docs/ARCHITECTURE.md section 4).

/** A product row with its persisted orders counted by status. */
export interface ProductSnapshot {
  id: string;
  name: string;
  priceCents: number;
  stockTotal: number;
  perUserLimit: number;
  startsAt: Date;
  /** Persisted orders by status (queued ones are not in PostgreSQL yet). */
  orders: Record<string, number>;
}

interface ProductSnapshotRow {
  id: string;
  name: string;
  price_cents: number;
  stock_total: number;
  per_user_limit: number;
  starts_at: Date;
  orders: Record<string, number> | null;
}

// One statement, so one connection and one round trip per read.
const PRODUCT_SNAPSHOT = `
  SELECT p.id, p.name, p.price_cents, p.stock_total, p.per_user_limit, p.starts_at,
         (SELECT json_object_agg(c.status, c.n)
            FROM (SELECT status, count(*)::int AS n FROM orders
                   WHERE product_id = p.id GROUP BY status) c) AS orders
    FROM products p WHERE p.id = $1`;

/** The product `id` and its orders by status, or undefined when there is no such product. */
export async function readProductSnapshot(
  pool: Pool,
  id: string,
): Promise<ProductSnapshot | undefined> {
  const { rows } = await pool.query<ProductSnapshotRow>(PRODUCT_SNAPSHOT, [id]);
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    id: row.id,
    name: row.name,
    priceCents: row.price_cents,
    stockTotal: row.stock_total,
    perUserLimit: row.per_user_limit,
    startsAt: row.starts_at,
    orders: row.orders ?? {},
  };
}
