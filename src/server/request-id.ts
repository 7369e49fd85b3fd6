// Every request has an id: the caller's X-Request-Id when it is short and printable (a proxy
// or a client tracing a request end to end), else a fresh UUID. It is on every log line of the
// request (Fastify's request.log binds it as `reqId`) and in the response's X-Request-Id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

export const REQUEST_ID_HEADER = 'x-request-id';
/** Visible ASCII only, so an id can neither forge a log line nor smuggle a header. */
const ACCEPTED_ID = /^[\x21-\x7e]{1,128}$/;

/** Fastify's `genReqId`: the caller's id when acceptable, a new one otherwise. */
export function requestId(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTED_ID.test(given) ? given : randomUUID();
}

/**
 * Sends the id back. On the raw response, so that streams that write their own head after
 * `reply.hijack()` (SSE) carry it too: Node merges it into whatever head is written.
 */
export function echoRequestId(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.setHeader(REQUEST_ID_HEADER, request.id);
    done();
  });
}
