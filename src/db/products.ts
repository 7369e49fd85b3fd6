import type { Pool, PoolClient } from './pool.js';

// The products table family: the product page's read, seed's write, and what the audit and
// rebuildRedis read of a product (docs/ARCHITECTURE.md section 4).

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

/** Every product's id, in order. */
export async function listProductIds(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>('SELECT id FROM products ORDER BY id');
  return rows.map((r) => r.id);
}

/** A product's stock as PostgreSQL guards it. */
export interface ProductStock {
  stockTotal: number;
  remaining: number;
}

export async function readProductStock(
  pool: Pool,
  productId: string,
): Promise<ProductStock | undefined> {
  const { rows } = await pool.query<{ stock_total: number; remaining: number }>(
    'SELECT stock_total, remaining FROM products WHERE id = $1',
    [productId],
  );
  const row = rows[0];
  return row === undefined ? undefined : { stockTotal: row.stock_total, remaining: row.remaining };
}

/** What rebuildRedis lays a product's Redis sale state out from. */
export interface ProductSaleSettings extends ProductStock {
  perUserLimit: number;
  startsAt: Date;
  stockShards: number;
}

/** Read inside the caller's snapshot (rebuildRedis's REPEATABLE READ transaction). */
export async function readProductSaleSettings(
  client: PoolClient,
  productId: string,
): Promise<ProductSaleSettings | undefined> {
  const { rows } = await client.query<{
    remaining: number;
    stock_total: number;
    per_user_limit: number;
    starts_at: Date;
    stock_shards: number;
  }>(
    'SELECT remaining, stock_total, per_user_limit, starts_at, stock_shards FROM products WHERE id = $1',
    [productId],
  );
  const row = rows[0];
  return row === undefined
    ? undefined
    : {
        remaining: row.remaining,
        stockTotal: row.stock_total,
        perUserLimit: row.per_user_limit,
        startsAt: row.starts_at,
        stockShards: row.stock_shards,
      };
}

/** A product as seed writes it: its whole stock remaining. */
export interface SeededProduct {
  productId: string;
  name: string;
  priceCents: number;
  stock: number;
  perUserLimit: number;
  startsAt: Date;
  stockShards: number;
}

/** Creates the product or overwrites it, inside seed's transaction. */
export async function upsertProduct(client: PoolClient, product: SeededProduct): Promise<void> {
  await client.query(
    `INSERT INTO products (id, name, price_cents, stock_total, remaining, per_user_limit, starts_at, stock_shards)
       VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET
         name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,
         stock_total = EXCLUDED.stock_total, remaining = EXCLUDED.remaining,
         per_user_limit = EXCLUDED.per_user_limit, starts_at = EXCLUDED.starts_at,
         stock_shards = EXCLUDED.stock_shards, updated_at = now()`,
    [
      product.productId,
      product.name,
      product.priceCents,
      product.stock,
      product.perUserLimit,
      product.startsAt,
      product.stockShards,
    ],
  );
}
