import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PRODUCT_ID } from '../../domain/ids.js';
import { readStockTotal } from '../../redis/sale-state.js';
import { problemResponses } from '../openapi.js';
import { ProblemError } from '../problems.js';

const ProductParams = Type.Object({ id: Type.String({ pattern: PRODUCT_ID.source }) });

const count = Type.Integer({ minimum: 0 });
const Product = Type.Object({
  id: Type.String(),
  name: Type.String(),
  priceCents: Type.Integer(),
  stockTotal: Type.Integer(),
  remaining: Type.Integer({ minimum: 0, description: 'live, from Redis' }),
  soldOut: Type.Boolean(),
  perUserLimit: Type.Integer(),
  startsAt: Type.String({ format: 'date-time' }),
  orders: Type.Object(
    { pending: count, paid: count, payment_failed: count, needs_reconciliation: count },
    { description: 'persisted orders by status (at most a second old; queued ones not yet)' },
  ),
});

export const productRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, products, layouts } = app.api;

  /**
   * A product with its live stock (from Redis, where buys decrement it); the product row and
   * its order counts come from a per-process snapshot at most a second old
   * (src/server/product-snapshots.ts), so this public route cannot tie up PostgreSQL.
   */
  const schema = {
    summary: 'A product with its live stock',
    params: ProductParams,
    response: {
      200: Product,
      ...problemResponses('bad_request', 'product_not_found', 'overloaded'),
    },
  };
  app.get('/products/:id', { schema }, async (request) => {
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
      orders: {
        pending: product.orders.pending ?? 0,
        paid: product.orders.paid ?? 0,
        payment_failed: product.orders.payment_failed ?? 0,
        needs_reconciliation: product.orders.needs_reconciliation ?? 0,
      },
    };
  });
};
