import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { OrderStatus } from '../../domain/order-status.js';
import { productKeys, productsKey } from '../../redis/keys.js';
import { ProblemError } from '../problems.js';

const OrderParams = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }),
});

interface OrderRow {
  id: string;
  product_id: string;
  qty: number;
  status: string;
  accepted_at: Date;
  updated_at: Date;
}

export const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, pool, keyPrefix, authenticate } = app.sale;

  /**
   * The caller's own order. Another user's order is a 404, exactly like an unknown id, so
   * order ids cannot be probed (BOLA). Before the worker persists it, the order is `queued`.
   */
  async function persistedOrder(id: string, userId: string) {
    const { rows } = await pool.query<OrderRow>(
      `SELECT id, product_id, qty, status, accepted_at, updated_at
         FROM orders WHERE id = $1 AND user_id = $2`,
      [id, userId],
    );
    const row = rows[0];
    return row === undefined
      ? undefined
      : {
          orderId: row.id,
          productId: row.product_id,
          qty: row.qty,
          status: row.status,
          acceptedAt: row.accepted_at.toISOString(),
          updatedAt: row.updated_at.toISOString(),
        };
  }

  /** The product whose owner index says `userId` placed order `id`, if any. */
  async function queuedOrderProduct(id: string, userId: string): Promise<string | undefined> {
    const products = await redis.smembers(productsKey(keyPrefix));
    if (products.length === 0) return undefined;
    const pipeline = redis.pipeline();
    for (const productId of products) pipeline.hget(productKeys(keyPrefix, productId).owners, id);
    const owners = (await pipeline.exec()) ?? [];
    return products[owners.findIndex(([, owner]) => owner === userId)];
  }

  /**
   * The caller's own order. Another user's order is a 404, exactly like an unknown id, so
   * order ids cannot be probed (BOLA). Before the worker persists it, the order is `queued`.
   */
  app.get(
    '/order/:id',
    { schema: { params: OrderParams }, onRequest: authenticate },
    async (request) => {
      const { id } = request.params;
      const persisted = await persistedOrder(id, request.userId);
      if (persisted !== undefined) return persisted;
      const productId = await queuedOrderProduct(id, request.userId);
      if (productId === undefined) throw new ProblemError('order_not_found');
      // The worker may have persisted it between our two reads: PG has the newer answer.
      return (
        (await persistedOrder(id, request.userId)) ?? {
          orderId: id,
          productId,
          status: OrderStatus.Queued,
        }
      );
    },
  );
};
