import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { PRODUCT_ID } from '../../domain/ids.js';
import { BuyCode, type BuyResult } from '../../sale/buy.js';
import { mayHaveRun } from '../../domain/errors.js';
import { isNotReplicated } from '../../redis/resp.js';
import { buyStrategy, type BuyStrategy } from '../buy-modes.js';
import { problemResponses } from '../openapi.js';
import { sendProblem, type ProblemType } from '../problems.js';

export const MAX_QTY = 1000;

export const BuyBody = Type.Object(
  {
    productId: Type.String({ pattern: PRODUCT_ID.source }),
    qty: Type.Integer({ minimum: 1, maximum: MAX_QTY }),
  },
  { additionalProperties: false },
);

/** 1-255 printable ASCII characters (space through tilde). */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/** Read by the handler itself (its own problems, before any validation), documented here. */
const BuyHeaders = Type.Object(
  {
    'idempotency-key': Type.String({
      pattern: IDEMPOTENCY_KEY.source,
      description:
        "the client's key for this buy, scoped to (product, user): a retry of an accepted buy with the same key and body gets the same accept again, with Idempotent-Replayed: true (the same key with another body: 422). A rejection is not recorded: a retry after one is decided again",
    }),
  },
  { required: ['idempotency-key'] },
);

const BuyAccepted = Type.Object(
  {
    orderId: Type.String({ format: 'uuid' }),
    status: Type.String({ description: "'queued' (queue mode) or 'pending' (sync mode)" }),
    statusUrl: Type.String({ description: 'GET it (or its /stream) to follow the order' }),
  },
  { description: 'Accepted (the Location header is the statusUrl)' },
);

const BUY_SCHEMA = {
  summary: 'Buy units of a product',
  description:
    'Queue mode (the default) answers 202 once Redis reserved the units and queued the order; sync mode answers 201 once PostgreSQL committed it. Only an accept is recorded under the Idempotency-Key: a retry gets it again byte for byte, even after Redis lost the record (the order id is derived from the product, user, quantity and key). A rejection (sold out, limit reached, not open, rate limited) reserves nothing and is not recorded: a retry with the same key is a new decision, and may win a unit a release gave back.',
  security: [{ bearer: [] }],
  body: BuyBody,
  response: {
    201: { ...BuyAccepted, description: 'Accepted and persisted (sync mode)' },
    202: { ...BuyAccepted, description: 'Accepted and queued (queue mode)' },
    ...problemResponses(
      'bad_request',
      'idempotency_key_missing',
      'idempotency_key_invalid',
      'unauthorized',
      'product_not_found',
      'sold_out',
      'insufficient_stock',
      'limit_reached',
      'not_open',
      'stock_sharded',
      'body_too_large',
      'unsupported_media_type',
      'idempotency_key_reused',
      'rate_limited',
      'overloaded',
      'outcome_unknown',
    ),
  },
};

const REJECTIONS: Partial<Record<BuyCode, ProblemType>> = {
  [BuyCode.SoldOut]: 'sold_out',
  [BuyCode.InsufficientStock]: 'insufficient_stock',
  [BuyCode.LimitReached]: 'limit_reached',
  [BuyCode.NotOpen]: 'not_open',
  [BuyCode.UnknownProduct]: 'product_not_found',
  [BuyCode.IdempotencyMismatch]: 'idempotency_key_reused',
  [BuyCode.StockSharded]: 'stock_sharded',
};

const OUTCOME_LABEL: Record<BuyCode, string> = {
  [BuyCode.Accepted]: 'accepted',
  [BuyCode.SoldOut]: 'sold_out',
  [BuyCode.InsufficientStock]: 'insufficient_stock',
  [BuyCode.LimitReached]: 'limit_reached',
  [BuyCode.NotOpen]: 'not_open',
  [BuyCode.UnknownProduct]: 'unknown_product',
  [BuyCode.IdempotencyMismatch]: 'idempotency_mismatch',
  [BuyCode.RateLimited]: 'rate_limited',
  [BuyCode.Contended]: 'contended',
  [BuyCode.StockSharded]: 'stock_sharded',
};

/**
 * The answer to a buy, rendered only from (mode, code, orderId): a replay with the same
 * Idempotency-Key gets the same bytes as the first answer, plus Idempotent-Replayed.
 */
function sendBuyResult(
  reply: FastifyReply,
  strategy: BuyStrategy,
  result: BuyResult,
): FastifyReply {
  if (result.replayed) reply.header('idempotent-replayed', 'true');
  if (result.code === BuyCode.Accepted) {
    const statusUrl = `/order/${result.orderId}`;
    const { status, orderStatus } = strategy.accepted;
    return reply
      .code(status)
      .header('location', statusUrl)
      .type('application/json')
      .send(`{"orderId":"${result.orderId}","status":"${orderStatus}","statusUrl":"${statusUrl}"}`);
  }
  if (result.code === BuyCode.RateLimited) {
    return sendProblem(
      reply,
      'rate_limited',
      undefined,
      Math.max(1, Math.ceil(result.retryAfterMs / 1000)),
    );
  }
  if (result.code === BuyCode.Contended) {
    // Nothing was reserved: the product's last units were moving between its shards.
    return sendProblem(reply, 'overloaded', 'the last units are moving between shards', 1);
  }
  return sendProblem(reply, REJECTIONS[result.code] ?? 'internal');
}

export const buyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { soldOut, backpressure, metrics, authenticate, orderIdOf } = app.api;
  const strategy = buyStrategy(app.api);

  app.post(
    '/order/buy',
    { schema: BUY_SCHEMA, config: { documentedHeaders: BuyHeaders }, onRequest: authenticate },
    async (request, reply) => {
      // Refuse before touching Redis: accepting more than the workers can persist only grows
      // the backlog (and the time to confirmation) for everyone.
      if (backpressure.overloaded || strategy.overloaded()) {
        metrics.buyOutcomes.inc({ outcome: 'overloaded' });
        return sendProblem(reply, 'overloaded', undefined, 1);
      }
      const key = request.headers['idempotency-key'];
      if (key === undefined) return sendProblem(reply, 'idempotency_key_missing');
      if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
        return sendProblem(reply, 'idempotency_key_invalid');
      }
      const { productId, qty } = request.body;
      const named = { productId, userId: request.userId, qty, idempotencyKey: key };
      // Every attempt with this key and payload names the same order (src/domain/order-id.ts).
      const buy = { ...named, orderId: orderIdOf(named) };

      const heard = soldOut.ticket(productId);
      // Undefined: the sold-out fast path found no answer for the key (nothing recorded).
      let result: BuyResult | undefined;
      try {
        result = soldOut.isSoldOut(productId)
          ? await strategy.storedAnswer(buy)
          : await strategy.buy(buy);
      } catch (error) {
        // The buy was sent and its answer lost (the connection broke or stalled), or no replica
        // acknowledged it in time (`--durability replica`): the buy script may have reserved
        // the unit (queue mode), or the transaction committed (sync mode). A retry with the
        // same key is safe and gets the real answer.
        if (!mayHaveRun(error)) throw error;
        metrics.buyOutcomes.inc({ outcome: 'outcome_unknown' });
        const detail = isNotReplicated(error)
          ? 'no replica acknowledged the buy within the durability timeout; it may have been accepted'
          : `the connection to ${strategy.mode === 'sync' ? 'PostgreSQL' : 'Redis'} broke after the buy was sent; it may have been accepted`;
        return sendProblem(reply, 'outcome_unknown', detail, 1);
      }
      if (result === undefined) {
        metrics.buyOutcomes.inc({ outcome: 'sold_out' });
        return sendProblem(reply, 'sold_out');
      }
      if (
        (result.code === BuyCode.SoldOut && !result.replayed) ||
        (result.code === BuyCode.Accepted && result.remaining === 0)
      ) {
        soldOut.markSoldOut(productId, heard);
      }
      metrics.buyOutcomes.inc({
        outcome: result.replayed ? 'replayed' : OUTCOME_LABEL[result.code],
      });
      return sendBuyResult(reply, strategy, result);
    },
  );
};
