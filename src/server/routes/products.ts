import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PRODUCT_ID } from '../../redis/keys.js';
import { readStockTotal } from '../../redis/sale-state.js';
import { ProblemError } from '../problems.js';

const ProductParams = Type.Object({ id: Type.String({ pattern: PRODUCT_ID.source }) });

const ORDER_STATUSES = ['pending', 'paid', 'payment_failed', 'needs_reconciliation'] as const;

export const productRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, products, layouts } = app.sale;

  /**
   * A product with its live stock (from Redis, where buys decrement it); the product row and
   * its order counts come from a per-process snapshot at most a second old
   * (src/server/product-snapshots.ts), so this public route cannot tie up PostgreSQL.
   */
  app.get('/products/:id', { schema: { params: ProductParams } }, async (request) => {
    const { id } = request.params;
    const [product, remaining] = await Promise.all([
      products.get(id),
      layouts.current(id).then((layout) => readStockTotal(redis, layout)),
    ]);
    if (product === undefined) throw new ProblemError('product_not_found');
    return {
      id: product.id,
      name: product.name,
      priceCents: product.priceCents,
      stockTotal: product.stockTotal,
      remaining,
      soldOut: remaining === 0,
      perUserLimit: product.perUserLimit,
      startsAt: product.startsAt.toISOString(),
      /** Persisted orders by status (queued ones are not in PostgreSQL yet). */
      orders: Object.fromEntries(
        ORDER_STATUSES.map((status) => [status, product.orders[status] ?? 0]),
      ),
    };
  });
};
