// `fsale gateway`: a mock payment provider over HTTP, with the latency and failures of a real
// one (see behaviour.ts) and a ledger that reconciliation and the audit can ask.
//
//   POST /charges             Idempotency-Key + {orderId, amountCents} -> 201 charge | 402 | 429 | 503 | hang
//   POST /charges/:key/void   {orderId, amountCents} -> 200 voided: any later charge with the key
//                             is refused (409 charge_voided) | 409 charge_exists | 409 in flight
//   GET  /charges/:key        the ledger's answer for one key (404 never charged, 409 in flight)
//   GET  /charges?after=&limit=  the whole ledger, in pages
//   GET  /healthz
//
// The ledger is in memory: restarting the gateway forgets every charge.

import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyReply,
} from 'fastify';
import {
  DEFAULT_RATES,
  MAX_SEED,
  modelProblem,
  type BehaviourModel,
  type OutcomeRates,
} from './behaviour.js';
import type { LedgerEntry } from './ledger.js';
import { GatewayMetrics } from './metrics.js';
import { MockProvider, type ChargeAnswer, type VoidAnswer } from './provider.js';
import { PROBLEM_CONTENT_TYPE, problem, type Problem } from './problems.js';

export interface GatewayOptions {
  /** Unsigned 32-bit seed; the same seed gives the same outcome per key. Default: random. */
  seed?: number;
  /** Divides every latency; default 1 (median 650 ms). */
  speed?: number;
  /** Failure rates per attempt; default 1 % hang, 2 % 503, 1 % 429, 5 % decline. */
  rates?: OutcomeRates;
  /** Where charges and voids are counted (served by `fsale gateway --admin-port`). */
  metrics?: GatewayMetrics;
  /** The process's logger (src/cli/log.ts), for what goes wrong; none: nothing is logged. */
  logger?: FastifyBaseLogger | undefined;
}

/** 1..255 printable ASCII characters (space included), as on the buy path. */
export const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

const ChargeBody = Type.Object(
  {
    orderId: Type.String({ minLength: 1, maxLength: 255 }),
    amountCents: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  },
  { additionalProperties: false },
);

const PageQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);

const KeyParams = Type.Object({ key: Type.String() });

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

export function resolveModel(options: GatewayOptions): BehaviourModel {
  const model: BehaviourModel = {
    seed: options.seed ?? randomInt(0, MAX_SEED + 1),
    speed: options.speed ?? 1,
    rates: { ...(options.rates ?? DEFAULT_RATES) },
  };
  const wrong = modelProblem(model);
  if (wrong !== undefined) throw new RangeError(`gateway: ${wrong}`);
  return model;
}

export function buildGateway(options: GatewayOptions = {}) {
  const provider = new MockProvider(resolveModel(options));
  const metrics = options.metrics ?? new GatewayMetrics();
  metrics.track({ inFlight: () => provider.inFlight, ledgerEntries: () => provider.ledger.size });
  const app = Fastify({
    // A request's own lines only (an unexpected error), never one per charge.
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024,
    requestTimeout: 30_000,
    // Idle sockets are dropped after this; it also bounds how long a hung charge holds a
    // connection whose caller vanished without closing it.
    connectionTimeout: 10 * 60_000,
    routerOptions: { maxParamLength: 1024 },
    // Bodies are checked as sent: no coercion, and extra fields are refused, not stripped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const hung = new Set<Socket>();
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    // Charges waiting out their latency answer now; hung ones get their connection reset,
    // which is what their callers would see from a provider that went away.
    provider.hurry();
    for (const socket of hung) socket.destroy();
    hung.clear();
    done();
  });

  // An answer sent while closing ends its keep-alive connection; otherwise the close would
  // wait for that connection's keep-alive timeout (its request was active when idle ones were cut).
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  // Charges are JSON only (Fastify also parses text/plain by default).
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 413) return sendProblem(reply, problem('payload_too_large', error.message));
    if (status === 415) return sendProblem(reply, problem('unsupported_media_type', error.message));
    if (status >= 400 && status < 500) {
      return sendProblem(reply, { ...problem('bad_request', error.message), status });
    }
    // The details of a 5xx are a bug report, not an answer.
    return sendProblem(reply, problem('internal', 'the gateway failed to handle the request'));
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem('not_found', `no route ${request.method} ${request.url}`)),
  );

  app.get('/healthz', () => ({
    status: 'ok',
    seed: provider.model.seed,
    speed: provider.model.speed,
    rates: provider.model.rates,
    charges: provider.ledger.size,
    inFlight: provider.inFlight,
  }));

  app.post('/charges', { schema: { body: ChargeBody } }, async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      return sendProblem(
        reply,
        problem('bad_request', 'Idempotency-Key header is required: 1-255 printable characters'),
      );
    }
    const started = performance.now();
    const answer = await provider.charge(key, request.body);
    metrics.charged(answer, (performance.now() - started) / 1000);
    if (answer.kind === 'hang') {
      // Never answered: the socket is held until the caller gives up or the gateway stops.
      reply.hijack();
      const socket = request.raw.socket;
      hung.add(socket);
      socket.once('close', () => hung.delete(socket));
      return reply;
    }
    return sendAnswer(reply, key, answer);
  });

  app.post(
    '/charges/:key/void',
    { schema: { params: KeyParams, body: ChargeBody } },
    (request, reply) => {
      const { key } = request.params;
      if (!IDEMPOTENCY_KEY.test(key)) {
        return sendProblem(reply, problem('bad_request', 'not a valid idempotency key'));
      }
      const answer = provider.void(key, request.body);
      metrics.voided(answer);
      return sendVoidAnswer(reply, key, answer, provider.attempts(key));
    },
  );

  app.get('/charges/:key', { schema: { params: KeyParams } }, (request, reply) => {
    const { key } = request.params;
    if (!IDEMPOTENCY_KEY.test(key)) {
      return sendProblem(reply, problem('bad_request', 'not a valid idempotency key'));
    }
    const found = provider.lookup(key);
    switch (found.state) {
      case 'recorded':
        return ledgerView(found.charge, found.attempts);
      case 'inFlight':
        // Not "never charged": the answer is still coming, and reconciling now would guess.
        return sendProblem(
          reply,
          problem('charge_in_progress', 'a charge with this key is in progress; ask again', {
            key,
            attempts: found.attempts,
          }),
          { 'retry-after': '1' },
        );
      case 'none':
        return sendProblem(
          reply,
          problem('not_found', 'no charge was made with this key', {
            key,
            attempts: found.attempts,
          }),
        );
    }
  });

  app.get('/charges', { schema: { querystring: PageQuery } }, (request, reply) => {
    const after = Number(request.query.after ?? '0');
    const limit = Number(request.query.limit ?? String(DEFAULT_PAGE));
    if (limit < 1 || limit > MAX_PAGE) {
      return sendProblem(reply, problem('bad_request', `limit must be 1-${MAX_PAGE}`));
    }
    const page = provider.ledger.page(after, limit);
    return {
      charges: page.entries.map((entry) => ledgerView(entry, provider.attempts(entry.key))),
      next: page.next === undefined ? null : String(page.next),
    };
  });

  return app;
}

export type GatewayApp = ReturnType<typeof buildGateway>;

function sendAnswer(
  reply: FastifyReply,
  key: string,
  answer: Exclude<ChargeAnswer, { kind: 'hang' }>,
): FastifyReply {
  switch (answer.kind) {
    case 'succeeded': {
      const { charge } = answer;
      return reply
        .code(answer.replayed ? 200 : 201)
        .headers({ location: `/charges/${encodeURIComponent(key)}`, ...replayHeader(answer) })
        .send({
          chargeId: charge.chargeId,
          orderId: charge.orderId,
          amountCents: charge.amountCents,
          status: 'succeeded',
        });
    }
    case 'declined': {
      const { charge } = answer;
      return sendProblem(
        reply,
        problem('card_declined', `the charge for order ${charge.orderId} was declined`, {
          orderId: charge.orderId,
          amountCents: charge.amountCents,
          declineCode: charge.declineCode,
        }),
        replayHeader(answer),
      );
    }
    case 'unavailable':
      return sendProblem(reply, problem('unavailable', 'the provider is unavailable; retry'));
    case 'rateLimited':
      return sendProblem(
        reply,
        problem('rate_limited', `too many requests; retry in ${answer.retryAfterSeconds} s`),
        { 'retry-after': String(answer.retryAfterSeconds) },
      );
    case 'voided':
      return sendProblem(
        reply,
        problem(
          'charge_voided',
          'this Idempotency-Key was voided: nothing was or will be charged',
          {
            key,
            voidedAt: answer.entry.settledAt,
          },
        ),
      );
    case 'keyReused':
      return sendProblem(
        reply,
        problem(
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different orderId or amountCents',
          { original: answer.original },
        ),
      );
  }
}

function sendVoidAnswer(
  reply: FastifyReply,
  key: string,
  answer: VoidAnswer,
  attempts: number,
): FastifyReply {
  switch (answer.kind) {
    case 'voided':
      return reply.headers(replayHeader(answer)).send(ledgerView(answer.entry, attempts));
    case 'final':
      // The key's charge answer stands: the body is the ledger's record of it.
      return sendProblem(reply, {
        ...problem('charge_exists', `a charge with this key is already ${answer.charge.status}`),
        charge: ledgerView(answer.charge, attempts),
      });
    case 'inFlight':
      return sendProblem(
        reply,
        problem('charge_in_progress', 'a charge with this key is in progress; ask again', {
          key,
          attempts,
        }),
        { 'retry-after': '1' },
      );
  }
}

function sendProblem(
  reply: FastifyReply,
  body: Problem,
  headers: Record<string, string> = {},
): FastifyReply {
  return reply.code(body.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(body);
}

/** A replayed final answer says so, like the buy path's replays. */
function replayHeader(answer: { replayed: boolean }): Record<string, string> {
  return answer.replayed ? { 'idempotent-replayed': 'true' } : {};
}

export interface LedgerView {
  key: string;
  status: LedgerEntry['status'];
  chargeId?: string;
  declineCode?: string;
  orderId: string;
  amountCents: number;
  attempts: number;
  settledAt: string;
  answered: boolean;
}

function ledgerView(entry: LedgerEntry, attempts: number): LedgerView {
  const view: LedgerView = {
    key: entry.key,
    status: entry.status,
    orderId: entry.orderId,
    amountCents: entry.amountCents,
    attempts,
    settledAt: entry.settledAt,
    answered: entry.answered,
  };
  if (entry.chargeId !== undefined) view.chargeId = entry.chargeId;
  if (entry.declineCode !== undefined) view.declineCode = entry.declineCode;
  return view;
}

/** Listens and returns the URL actually bound (port 0 becomes the port the OS chose). */
export async function listenGateway(app: GatewayApp, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const address = app.server.address();
  if (address === null || typeof address === 'string') return `http://${host}:${port}`;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${shown}:${address.port}`;
}
