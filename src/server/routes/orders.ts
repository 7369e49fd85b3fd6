import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { OrderStatus } from '../../domain/order-status.js';
import { problemResponses } from '../openapi.js';
import { findOrder } from '../order-lookup.js';
import { ProblemError } from '../problems.js';

export const OrderParams = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }),
});

export const OrderView = Type.Object({
  orderId: Type.String({ format: 'uuid' }),
  productId: Type.String(),
  status: Type.Union(
    Object.values(OrderStatus).map((s) => Type.Literal(s)),
    {
      description: "'queued' until the order worker persisted it",
    },
  ),
  qty: Type.Optional(Type.Integer({ minimum: 1 })),
  acceptedAt: Type.Optional(Type.String({ format: 'date-time' })),
  updatedAt: Type.Optional(Type.String({ format: 'date-time' })),
});

export const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** The caller's own order; anyone else's is a 404 like an unknown id. */
  app.get(
    '/order/:id',
    {
      schema: {
        summary: "The caller's order",
        security: [{ bearer: [] }],
        params: OrderParams,
        response: {
          200: OrderView,
          ...problemResponses('bad_request', 'unauthorized', 'order_not_found'),
        },
      },
      onRequest: app.api.authenticate,
    },
    async (request) => {
      const order = await findOrder(app.api, request.params.id, request.userId);
      if (order === undefined) throw new ProblemError('order_not_found');
      return order;
    },
  );
};
