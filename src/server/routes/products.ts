import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PRODUCT_ID, productKeys } from '../../redis/keys.js';
import { ProblemError } from '../problems.js';

const ProductParams = Type.Object({ id: Type.String({ pattern: PRODUCT_ID.source }) });

interface ProductRow {
  id: string;
  name: string;
  price_cents: number;
  stock_total: number;
  per_user_limit: number;
  starts_at: Date;
}

export const productRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, pool, keyPrefix } = app.sale;

  /** A product with its live stock (from Redis, where buys decrement it). */
  app.get('/products/:id', { schema: { params: ProductParams } }, async (request) => {
    const { id } = request.params;
    const [{ rows }, counts, stock] = await Promise.all([
      pool.query<ProductRow>(
        'SELECT id, name, price_cents, stock_total, per_user_limit, starts_at FROM products WHERE id = $1',
        [id],
      ),
      pool.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM orders WHERE product_id = $1 GROUP BY status',
        [id],
      ),
      redis.get(productKeys(keyPrefix, id).stock),
    ]);
    const row = rows[0];
    if (row === undefined) throw new ProblemError('product_not_found');
    const remaining = Math.max(0, Number(stock ?? 0));
    return {
      id: row.id,
      name: row.name,
      priceCents: row.price_cents,
      stockTotal: row.stock_total,
      remaining,
      soldOut: remaining === 0,
      perUserLimit: row.per_user_limit,
      startsAt: row.starts_at.toISOString(),
      /** Persisted orders by status (queued ones are not in PostgreSQL yet). */
      orders: Object.fromEntries(
        ['pending', 'paid', 'payment_failed', 'needs_reconciliation'].map((status) => [
          status,
          counts.rows.find((r) => r.status === status)?.n ?? 0,
        ]),
      ),
    };
  });
};
