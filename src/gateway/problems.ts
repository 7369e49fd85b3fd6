// Every error the gateway answers, in one table: application/problem+json (RFC 9457) with a
// stable `type` callers can switch on.

export const GATEWAY_PROBLEMS = {
  bad_request: { status: 400, title: 'Bad request' },
  card_declined: { status: 402, title: 'Card declined' },
  not_found: { status: 404, title: 'Not found' },
  charge_in_progress: { status: 409, title: 'Charge in progress' },
  charge_voided: { status: 409, title: 'Charge voided' },
  charge_exists: { status: 409, title: 'Already charged' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Service unavailable' },
} as const;

export type GatewayProblemCode = keyof typeof GATEWAY_PROBLEMS;

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

export function problemType(code: GatewayProblemCode): string {
  return `urn:fsale:gateway:${code}`;
}

export function problem(
  code: GatewayProblemCode,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  const { status, title } = GATEWAY_PROBLEMS[code];
  return { type: problemType(code), title, status, detail, ...extensions };
}
