import type { FastifyReply } from 'fastify';

// Every error the API can answer, in one table: a stable type, its HTTP status and title.
// Bodies are application/problem+json (RFC 9457). Bodies are deterministic: the same decision
// answers the same bytes, whichever path made it (the buy script or the sold-out fast path).
// A buy's rejection is not recorded: a retry with the same Idempotency-Key is decided again.

export const PROBLEMS = {
  sold_out: { status: 409, title: 'Sold out' },
  insufficient_stock: { status: 409, title: 'Fewer units left than requested' },
  limit_reached: { status: 409, title: 'Per-user limit reached' },
  not_open: { status: 409, title: 'The sale has not started' },
  stock_sharded: {
    status: 409,
    title: 'This product is stock-sharded: sync mode does not sell it (serve --mode queue does)',
  },
  idempotency_key_reused: {
    status: 422,
    title: 'Idempotency-Key already used with a different request',
  },
  idempotency_key_missing: { status: 400, title: 'Idempotency-Key header is required' },
  idempotency_key_invalid: {
    status: 400,
    title: 'Idempotency-Key must be 1-255 printable ASCII characters',
  },
  bad_request: { status: 400, title: 'Bad request' },
  unauthorized: { status: 401, title: 'Missing or invalid bearer token' },
  not_found: { status: 404, title: 'Not found' },
  product_not_found: { status: 404, title: 'Unknown product' },
  order_not_found: { status: 404, title: 'Unknown order' },
  body_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Content-Type must be application/json' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Temporarily unavailable' },
  overloaded: { status: 503, title: 'Overloaded: retry shortly' },
  outcome_unknown: {
    status: 503,
    title:
      'The buy may have been accepted: retry with the same Idempotency-Key to learn its answer',
  },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemType = keyof typeof PROBLEMS;

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemBody(type: ProblemType, detail?: string): string {
  const { status, title } = PROBLEMS[type];
  return JSON.stringify(
    detail === undefined
      ? { type: `urn:fsale:problem:${type}`, title, status }
      : { type: `urn:fsale:problem:${type}`, title, status, detail },
  );
}

/** Sends a problem; `retryAfterSeconds` adds Retry-After (429, 503). */
export function sendProblem(
  reply: FastifyReply,
  type: ProblemType,
  detail?: string,
  retryAfterSeconds?: number,
): FastifyReply {
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
  return reply
    .code(PROBLEMS[type].status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(type, detail));
}

/** A known failure raised in a handler or hook; the error handler turns it into a problem. */
export class ProblemError extends Error {
  constructor(
    readonly type: ProblemType,
    readonly detail?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(detail ?? PROBLEMS[type].title);
    this.name = 'ProblemError';
  }
}
