import type { AuditReport } from '../audit/audit.js';
import { describe as describeError, UsageError } from '../domain/errors.js';
import type { ArrivalProcess, RateShape } from './arrivals.js';
import { runSlice, startAtWall } from './flood-slice.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import type { Slice } from './slices.js';
import { auditSummary, judge, type AuditSummary, type FloodSummary } from './summary.js';
import type { Threshold } from './thresholds.js';

export type LoadModel =
  | {
      kind: 'open';
      shape: RateShape;
      arrivals: ArrivalProcess;
      durationSeconds: number | undefined;
      /** Arrivals, when the run is bounded by a count. */
      requests: number | undefined;
    }
  | {
      kind: 'closed';
      connections: number;
      durationSeconds: number | undefined;
      requests: number | undefined;
    };

export interface FloodOptions {
  url: URL;
  productId: string;
  qty: number;
  model: LoadModel;
  users: number;
  userPrefix: string;
  keyPrefix: string;
  jwtSecret: string;
  retryRatio: number;
  doubleClick: boolean;
  seed: number;
  timeoutMs: number;
  maxInFlight: number;
  /** Open model: requests written on one connection before its answer (1: no pipelining). */
  pipelining: number;
  /** The share of the sale's buyers this process runs (--part); WHOLE by default. */
  slice: Slice;
  /** Open model: worker threads, each sending a sub-slice of `slice` (default 1: this thread). */
  threads?: number | undefined;
  /** --start-at: epoch ms at which the schedule's time 0 falls (default: once prepared). */
  startAt?: number | undefined;
  /** The generator is flagged when its send lag or event-loop delay p99 exceeds this. */
  maxSendLagMs: number;
  follow:
    | { maxStreams: number; pollIntervalMs: number; pollConcurrency: number; timeoutMs: number }
    | undefined;
  thresholds: readonly Threshold[];
  /** Runs the invariant audit (undefined: --no-audit). */
  audit: (() => Promise<AuditReport>) | undefined;
  auditAttempts: number;
  auditRetryDelayMs: number;
  /** Check the API answers and knows the product before sending load. */
  preflight: boolean;
}

export type FloodPhase = 'load' | 'follow' | 'audit';

export interface FloodProgress {
  phase: FloodPhase;
  elapsedSeconds: number;
  targetRate: number | null;
  /** Requests sent and answered in the last second. */
  sentLastSecond: number;
  p99LastSecond: number | null;
  sent: number;
  answered: number;
  inFlight: number;
  counts: Record<OutcomeClass, number>;
  orders: number;
  following: number | null;
}

export interface FloodHooks {
  onProgress?: ((progress: FloodProgress) => void) | undefined;
}

/**
 * Checks the API is up and the product exists (a typo should not become 10,000 errors), and
 * reads the stock remaining before the run (null when the page does not say).
 */
async function preflight(url: URL, productId: string): Promise<number | null> {
  const productUrl = new URL(`/products/${encodeURIComponent(productId)}`, url);
  let status: number;
  let body: string;
  try {
    const response = await fetch(productUrl, { signal: AbortSignal.timeout(5_000) });
    status = response.status;
    body = await response.text();
  } catch (error) {
    // fetch wraps the socket error (ECONNREFUSED...) in a TypeError('fetch failed').
    const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
    throw new UsageError(`cannot reach the API at ${url.origin}: ${describeError(cause)}`);
  }
  if (status === 404) throw new UsageError(`unknown product ${productId} at ${url.origin}`);
  try {
    const remaining = (JSON.parse(body) as { remaining?: unknown }).remaining;
    return typeof remaining === 'number' && Number.isFinite(remaining) ? remaining : null;
  } catch {
    return null;
  }
}

/** Tokens are signed at most this long before --start-at (serve refuses tokens valid > 24 h). */
const PREPARE_LEAD_MS = 5 * 60_000;

export async function runFlood(
  options: FloodOptions,
  hooks: FloodHooks = {},
  signal: AbortSignal = new AbortController().signal,
): Promise<FloodSummary> {
  const initialStock = options.preflight ? await preflight(options.url, options.productId) : null;
  if (options.startAt !== undefined)
    await sleepUntilWall(options.startAt - PREPARE_LEAD_MS, signal);
  const threads = options.threads ?? 1;
  const load =
    threads > 1 && options.model.kind === 'open'
      ? await (
          await import('./flood-thread.js')
        ).runInThreads(options, threads, initialStock, hooks, signal)
      : await runSlice(options, {
          initialStock,
          onProgress: hooks.onProgress,
          signal,
          start: (prepared) => startAtWall(options.startAt, prepared),
        });
  let audit: AuditSummary | null = null;
  if (options.audit !== undefined) {
    hooks.onProgress?.({ ...idleProgress(load), phase: 'audit' });
    audit = await auditWithRetries(options.audit, options.auditAttempts, options.auditRetryDelayMs);
  }
  return judge({ ...load, audit }, options.thresholds);
}

/** The progress line of a phase with nothing moving (the audit). */
function idleProgress(summary: FloodSummary): FloodProgress {
  return {
    phase: 'audit',
    elapsedSeconds: summary.rate.elapsedSeconds,
    targetRate: null,
    sentLastSecond: 0,
    p99LastSecond: null,
    sent: summary.requests.sent,
    answered: summary.requests.answered,
    inFlight: 0,
    counts: Object.fromEntries(
      OUTCOME_CLASSES.map((c) => [c, summary.outcomes[c].count]),
    ) as Record<OutcomeClass, number>,
    orders: summary.orders.accepted,
    following: null,
  };
}

async function sleepUntilWall(wall: number, signal: AbortSignal): Promise<void> {
  // setTimeout takes at most 2^31-1 ms; --start-at is at most a day ahead.
  while (!signal.aborted && Date.now() < wall) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(wall - Date.now(), 60_000));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * Runs the audit, again after a pause if it fails: its reads of Redis and PostgreSQL are not one
 * snapshot, so a payment settling between them can fail a check for an instant. A violation
 * that is real is still there on the last attempt.
 */
async function auditWithRetries(
  audit: () => Promise<AuditReport>,
  attempts: number,
  delayMs: number,
): Promise<AuditSummary> {
  let report: AuditReport | undefined;
  let attempt = 0;
  try {
    for (attempt = 1; attempt <= attempts; attempt++) {
      report = await audit();
      if (report.ok || attempt === attempts) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  } catch (error) {
    return { ran: false, ok: false, attempts: attempt, error: describeError(error), checks: [] };
  }
  if (report === undefined)
    return { ran: false, ok: false, attempts: 0, error: 'no audit attempt', checks: [] };
  return auditSummary(report, Math.min(attempt, attempts));
}
