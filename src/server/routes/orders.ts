import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { findOrder } from '../order-lookup.js';
import { ProblemError } from '../problems.js';

export const OrderParams = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }),
});

export const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** The caller's own order; anyone else's is a 404 like an unknown id. */
  app.get(
    '/order/:id',
    { schema: { params: OrderParams }, onRequest: app.sale.authenticate },
    async (request) => {
      const order = await findOrder(app.sale, request.params.id, request.userId);
      if (order === undefined) throw new ProblemError('order_not_found');
      return order;
    },
  );
};
