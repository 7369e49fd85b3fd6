// What a buy can come back as, from the buyer's side. Every request sent ends in exactly one
// class, so the class counts add up to the requests sent.

export const OUTCOME_CLASSES = [
  'accepted',
  'sold_out',
  'conflict',
  'rate_limited',
  'overloaded',
  'outcome_unknown',
  'client_error',
  'server_error',
  'network_error',
  'other',
] as const;

export type OutcomeClass = (typeof OUTCOME_CLASSES)[number];

/** How each class is shown in tables and charts. */
export const OUTCOME_LABELS: Readonly<Record<OutcomeClass, string>> = {
  accepted: '202/201 accepted',
  sold_out: '409 sold out',
  conflict: '409 other',
  rate_limited: '429 rate limited',
  overloaded: '503 overloaded',
  outcome_unknown: '503 may have been accepted',
  client_error: 'other 4xx',
  server_error: '5xx',
  network_error: 'network error',
  other: 'other status',
};

export const OUTCOME_COLORS: Readonly<Record<OutcomeClass, string>> = {
  accepted: '#2e7d32',
  sold_out: '#9e9e9e',
  conflict: '#ffb300',
  rate_limited: '#8e24aa',
  overloaded: '#fb8c00',
  outcome_unknown: '#c62828',
  client_error: '#6d4c41',
  server_error: '#d32f2f',
  network_error: '#000000',
  other: '#1e88e5',
};

/**
 * Classes that mean something went wrong (not a sale outcome and not deliberate load shedding).
 * `outcome_unknown` is one: the API lost Redis's answer to a buy it had sent (the buy may have
 * been accepted; a retry with the same key learns it), counted apart so it is never mistaken
 * for load shedding.
 */
export const ERROR_CLASSES: readonly OutcomeClass[] = [
  'outcome_unknown',
  'client_error',
  'server_error',
  'network_error',
  'other',
];

/** Deliberate load shedding: the API asked the client to come back later. */
export const SHED_CLASSES: readonly OutcomeClass[] = ['rate_limited', 'overloaded'];

const PROBLEM_PREFIX = 'urn:fsale:problem:';

/** The short problem type of an application/problem+json body (`sold_out`), if it has one. */
export function problemType(body: string): string | undefined {
  // Cheaper than JSON.parse on the hot path, and the API writes `type` first.
  const at = body.indexOf(PROBLEM_PREFIX);
  if (at === -1) return undefined;
  const start = at + PROBLEM_PREFIX.length;
  const end = body.indexOf('"', start);
  return end === -1 ? undefined : body.slice(start, end);
}

export function classify(status: number, problem: string | undefined): OutcomeClass {
  // 202 queued (queue mode) or 201 persisted (`serve --mode sync`).
  if (status === 202 || status === 201) return 'accepted';
  if (status === 409) return problem === 'sold_out' ? 'sold_out' : 'conflict';
  if (status === 429) return 'rate_limited';
  if (status === 503) return problem === 'outcome_unknown' ? 'outcome_unknown' : 'overloaded';
  if (status >= 500 && status < 600) return 'server_error';
  if (status >= 400 && status < 500) return 'client_error';
  return 'other';
}

const ORDER_ID = /"orderId":"([0-9a-f-]{36})"/;

/** The order id of a 202 body. */
export function acceptedOrderId(body: string): string | undefined {
  return ORDER_ID.exec(body)?.[1];
}
