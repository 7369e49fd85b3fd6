// The sale invariants (docs/ARCHITECTURE.md section 5) computed directly from PG and Redis, for tests.
import { productKeys } from '../../src/redis/keys.js';
import type { TestServices } from './services.js';

export interface SaleNumbers {
  initial: number;
  redisStock: number;
  /** Units held by orders in PG that are not released (pending, paid, needs_reconciliation). */
  heldInPg: number;
  /** Units in the stream not yet persisted. */
  unpersisted: number;
  byStatus: Record<string, number>;
  pgRemaining: number;
}

export async function saleNumbers(s: TestServices, productId: string): Promise<SaleNumbers> {
  const keys = productKeys(s.keyPrefix, productId);
  const product = await s.pool.query<{ stock_total: number; remaining: number }>(
    'SELECT stock_total, remaining FROM products WHERE id = $1',
    [productId],
  );
  const statuses = await s.pool.query<{ status: string; n: number; units: number }>(
    'SELECT status, count(*)::int AS n, sum(qty)::int AS units FROM orders WHERE product_id = $1 GROUP BY status',
    [productId],
  );
  const byStatus = Object.fromEntries(statuses.rows.map((r) => [r.status, r.n]));
  const heldInPg = statuses.rows
    .filter((r) => r.status !== 'payment_failed')
    .reduce((sum, r) => sum + r.units, 0);
  const entries = await s.redis.xrange(keys.orders, '-', '+');
  const ids = entries.map(([, f]) => f[f.indexOf('id') + 1] ?? '');
  const persisted = await s.pool.query<{ id: string }>(
    'SELECT id FROM orders WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const known = new Set(persisted.rows.map((r) => r.id));
  const unpersisted = entries
    .filter(([, f]) => !known.has(f[f.indexOf('id') + 1] ?? ''))
    .reduce((sum, [, f]) => sum + Number(f[f.indexOf('qty') + 1]), 0);
  return {
    initial: product.rows[0]?.stock_total ?? 0,
    redisStock: Number(await s.redis.get(keys.stock)),
    heldInPg,
    unpersisted,
    byStatus,
    pgRemaining: product.rows[0]?.remaining ?? 0,
  };
}
