import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ORDER_EVENT_NAMES, type OrderStatus } from '../../domain/order-status.js';
import { productKeys } from '../../redis/keys.js';
import { PRODUCT_ID } from '../../domain/ids.js';
import { readStockTotal } from '../../redis/sale-state.js';
import { mediaResponse, problemResponses } from '../openapi.js';
import { findOrder } from '../order-lookup.js';
import { ProblemError } from '../problems.js';
import type { StockMoves } from '../sale-feed.js';
import { encodeEvent } from '../sse.js';
import { OrderParams } from './orders.js';

const ProductParams = Type.Object({ id: Type.String({ pattern: PRODUCT_ID.source }) });

/**
 * A stock event; its id is the remaining count, so a reconnect with that id is up to date.
 * `accepted`/`released`: units this API process has heard accepted and released since it
 * started (from the buys' and releases' own publishes): a client takes rates from their
 * differences on one connection, which a level alone hides when buys and releases cross.
 */
export function stockEvent(
  productId: string,
  remaining: number,
  moves: StockMoves,
  at = Date.now(),
): string {
  const left = Math.max(0, remaining);
  return encodeEvent({
    id: String(left),
    event: 'stock',
    data: JSON.stringify({ productId, remaining: left, soldOut: left === 0, ...moves, at }),
  });
}

function orderEvent(
  orderId: string,
  productId: string,
  status: OrderStatus,
  at = Date.now(),
): string {
  return encodeEvent({
    id: status,
    event: ORDER_EVENT_NAMES[status],
    data: JSON.stringify({ orderId, productId, status, at }),
  });
}

export const streamRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, keyPrefix, feed, sse, authenticateStream, layouts } = app.api;
  feed.on('stock', (productId, remaining, moves) =>
    sse.publish(`stock:${productId}`, () => stockEvent(productId, remaining, moves)),
  );
  feed.on('order', (e) =>
    sse.publish(`order:${e.orderId}`, () => orderEvent(e.orderId, e.productId, e.status, e.at)),
  );

  /**
   * Live stock of a product: the current level first (unless Last-Event-ID says the client has
   * it), then changes coalesced to one per interval.
   */
  const stockSchema = {
    summary: 'Live stock of a product (server-sent events)',
    params: ProductParams,
    response: {
      200: mediaResponse(
        'text/event-stream',
        "'stock' events {productId, remaining, soldOut, accepted, released, at} (accepted/released: units this server process has heard bought and given back since it started; rates come from their differences on one connection), id = remaining; the current level first unless Last-Event-ID has it. A full server answers 200 with only a retry hint.",
      ),
      ...problemResponses('bad_request', 'product_not_found'),
    },
  };
  app.get('/stock/:id/stream', { schema: stockSchema }, async (request, reply) => {
    const { id } = request.params;
    const release = sse.watch(`stock:${id}`);
    try {
      const layout = await layouts.current(id);
      const [exists, total] = await Promise.all([
        redis.exists(productKeys(keyPrefix, id).sale),
        readStockTotal(redis, layout),
      ]);
      if (exists === 0) throw new ProblemError('product_not_found');
      let remaining = total;
      if (!feed.hears(id)) {
        // Seeded since the feed last looked: listen first, then read, so no change is missed.
        await feed.watch(id);
        remaining = await readStockTotal(redis, await layouts.current(id, 0));
      }
      const upToDate = request.headers['last-event-id'] === String(remaining);
      reply.hijack();
      sse.open(
        request.raw,
        reply.raw,
        `stock:${id}`,
        upToDate ? undefined : stockEvent(id, remaining, feed.movesOf(id)),
        // Anyone may open these, so each address gets a share (request.ip honours --trust-proxy).
        { kind: 'stock', owner: request.ip },
      );
    } finally {
      release();
    }
  });

  /** The caller's order as it moves to confirmed or failed: current state first. */
  app.get(
    '/order/:id/stream',
    {
      schema: {
        summary: "The caller's order as it changes (server-sent events)",
        security: [{ bearer: [] }, { accessToken: [] }],
        params: OrderParams,
        response: {
          200: mediaResponse(
            'text/event-stream',
            'one event per status change {orderId, productId, status, at}, id = status; the current status first unless Last-Event-ID has it',
          ),
          ...problemResponses('bad_request', 'unauthorized', 'order_not_found'),
        },
      },
      onRequest: authenticateStream,
    },
    async (request, reply) => {
      const topic = `order:${request.params.id}`;
      const release = sse.watch(topic);
      try {
        let order = await findOrder(app.api, request.params.id, request.userId);
        if (order !== undefined && !feed.hears(order.productId)) {
          await feed.watch(order.productId);
          order = await findOrder(app.api, request.params.id, request.userId);
        }
        if (order === undefined) throw new ProblemError('order_not_found');
        const upToDate = request.headers['last-event-id'] === order.status;
        reply.hijack();
        sse.open(
          request.raw,
          reply.raw,
          topic,
          upToDate ? undefined : orderEvent(order.orderId, order.productId, order.status),
          { kind: 'order', owner: request.userId },
        );
      } finally {
        release();
      }
    },
  );
};
