// Errors that are values: each has a type the CLI and the API turn into output in one place.

/** A dependency (Redis, PostgreSQL, the gateway) cannot be reached. Commands exit 2 on it. */
export class ServiceUnavailableError extends Error {
  constructor(
    readonly service: 'Redis' | 'PostgreSQL' | 'gateway',
    readonly target: string,
    cause: unknown,
  ) {
    super(`cannot reach ${service} at ${redactUrl(target)}: ${describe(cause)}`, { cause });
    this.name = 'ServiceUnavailableError';
  }
}

/** A request the user got wrong (bad flag value, unknown product): exit 2, nothing changed. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== undefined && !error.message.includes(code)
      ? `${code} ${error.message}`
      : error.message;
  }
  return String(error);
}

/** A URL with its password replaced, safe to print. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return raw;
  }
}

const OUTAGE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown: PostgreSQL is restarting
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000', // connection_exception
  '08003', // connection_does_not_exist
  '08006', // connection_failure
]);

/**
 * Whether a failed request may still have taken effect: it had been sent when its connection
 * broke or stalled, so Redis may have run the script, or PostgreSQL committed the statement;
 * only the answer is lost. The buy route answers 503 outcome_unknown: a retry with the same
 * Idempotency-Key gets the real answer. Set by the clients that know (markMayHaveRun).
 */
export function mayHaveRun(error: unknown): boolean {
  return error instanceof Error && (error as { mayHaveRun?: unknown }).mayHaveRun === true;
}

/** `error`, marked as one whose request may have taken effect (see mayHaveRun). */
export function markMayHaveRun<E extends Error>(error: E): E & { mayHaveRun: true } {
  return Object.assign(error, { mayHaveRun: true as const });
}

/**
 * Redis error replies that mean "not now" rather than "wrong": a replica after a failover
 * (READONLY), out of memory (OOM), busy with a long script (BUSY, not BUSYGROUP), still loading
 * its data, a cluster re-sharding (TRYAGAIN, CLUSTERDOWN, and a MOVED or ASK redirection the
 * cluster client gave up following). The command changed nothing (Redis refuses a script's first
 * write as a whole), so the client may retry.
 */
const TRANSIENT_REPLY =
  /^(READONLY|OOM|BUSY|MASTERDOWN|LOADING|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MOVED|ASK)\b/;

/**
 * Whether an error means a dependency is down or its connection broke (answer 503 and let the
 * client retry) rather than a bug (500).
 */
export function isServiceOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (TRANSIENT_REPLY.test(error.message)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && OUTAGE_CODES.has(code)) return true;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  // The last three are ioredis's Cluster client giving up: on redirections while a slot has no
  // master (its last error in the message), or on every node it knows.
  return /enableOfflineQueue|Connection is closed|Connection terminated|connection timeout|Stream isn't writeable|LOADING|timeout exceeded when trying to connect|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available/i.test(
    error.message,
  );
}
