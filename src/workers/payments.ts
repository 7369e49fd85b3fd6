import { setMaxListeners } from 'node:events';
import {
  endPaymentLeases,
  extendPaymentLease,
  leasePaymentJobs,
  recordPayment,
  type PaymentAttempt,
  type PaymentJob,
} from '../db/payments.js';
import { describe } from '../domain/errors.js';
import type { PaymentProvider } from '../payments/provider-client.js';
import { settleFailed, settlePaid, settleUnknown } from '../sale/settle.js';
import type { Stores } from '../stores.js';
import type { Logger } from 'pino';
import type { PaymentWorkerMetrics } from './metrics.js';
import { backoffMs, integerOption, sleep, WorkerRuntime } from './runtime.js';

export interface PaymentWorkerContext extends Stores {
  gateway: PaymentProvider;
  /** One record per notable event (outage, recovery, a settlement that failed). */
  log: Logger;
  /** Charges by outcome and their latency, for the admin listener's /metrics. */
  metrics?: PaymentWorkerMetrics | undefined;
}

export interface PaymentWorkerOptions {
  /** Charges in flight at once. */
  concurrency: number;
  /** A charge with no answer after this long is `needs_reconciliation`. */
  timeoutMs: number;
  /** Retries of a 429/503 within one job before it is handed back for later. */
  maxRetries: number;
  /** Cap of the backoff between retries. */
  maxBackoffMs: number;
  /** How long a job handed back after exhausting retries waits before the next try. */
  retryLaterMs: number;
  /** How often to look for new jobs when there were none. */
  pollMs: number;
}

export const PAYMENT_WORKER_DEFAULTS: PaymentWorkerOptions = {
  concurrency: 64,
  timeoutMs: 5_000,
  maxRetries: 4,
  maxBackoffMs: 5_000,
  retryLaterMs: 30_000,
  pollMs: 200,
};

export interface PaymentWorkerStats {
  /** Jobs leased. */
  claimed: number;
  /**
   * Of those, jobs whose previous lease had run out: taken over from a worker that died or
   * hung with them, or handed back for later and now due.
   */
  expiredLeases: number;
  paid: number;
  declined: number;
  unknown: number;
  retries: number;
  /** Jobs still throttled after their retries: their lease extended until they may be tried again. */
  handedBack: number;
  /** Leases of unfinished charges ended at stop, so another worker takes them at once. */
  leasesEnded: number;
  /** Transitions refused because the order had moved on (a stale or duplicate job). */
  stale: number;
  errors: number;
  inFlight: number;
}

export interface PaymentWorker {
  /** A snapshot of the counters. */
  stats(): PaymentWorkerStats;
  /** How long its loop has gone without progress (WorkerRuntime.sinceProgressMs). */
  sinceProgressMs(): number;
  /** Stops taking jobs, lets in-flight charges finish (up to one timeout), hands back the rest. */
  stop(): Promise<void>;
  done: Promise<void>;
}

/** Every option an integer: at least 1, or 0 for the retries. */
function validated(options: Partial<PaymentWorkerOptions>): PaymentWorkerOptions {
  const d = PAYMENT_WORKER_DEFAULTS;
  return {
    concurrency: integerOption('--concurrency', options.concurrency, d.concurrency),
    timeoutMs: integerOption('--timeout', options.timeoutMs, d.timeoutMs),
    maxRetries: integerOption('--max-retries', options.maxRetries, d.maxRetries, 0),
    maxBackoffMs: integerOption('--max-backoff', options.maxBackoffMs, d.maxBackoffMs),
    retryLaterMs: integerOption('retryLaterMs', options.retryLaterMs, d.retryLaterMs),
    pollMs: integerOption('pollMs', options.pollMs, d.pollMs),
  };
}

/**
 * Charges persisted orders. Pending orders are the queue: a worker leases a batch (so a crash
 * lets another worker take them over once the lease runs out), charges each with the order id
 * as idempotency key (so a retry or a takeover never charges twice), and moves the order with
 * a guarded transition.
 */
export function startPaymentWorker(
  ctx: PaymentWorkerContext,
  options: Partial<PaymentWorkerOptions> = {},
): PaymentWorker {
  const opts = validated(options);
  const runtime = new WorkerRuntime(ctx.log);
  // A lease must outlive the slowest job: every retry timing out, plus the backoffs.
  const leaseMs = (opts.timeoutMs + opts.maxBackoffMs) * (opts.maxRetries + 1) + opts.timeoutMs;
  const stats: PaymentWorkerStats = {
    claimed: 0,
    expiredLeases: 0,
    paid: 0,
    declined: 0,
    unknown: 0,
    retries: 0,
    handedBack: 0,
    leasesEnded: 0,
    stale: 0,
    errors: 0,
    inFlight: 0,
  };
  const running = new Map<string, Promise<void>>();
  // Aborts the charges in flight: only once they had their time to finish (see stop).
  const abort = new AbortController();
  // Every in-flight charge listens to it (via its own timer's controller): up to `concurrency`.
  setMaxListeners(0, abort.signal);
  let lastSettleError = '';

  async function charge(job: PaymentJob): Promise<void> {
    for (let retry = 0; ; retry++) {
      const sent = performance.now();
      const outcome = await ctx.gateway.charge(
        job.id,
        job.amountCents,
        opts.timeoutMs,
        abort.signal,
      );
      if (abort.signal.aborted) return; // shutting down: the lease is handed back below
      ctx.metrics?.charged(outcome.kind, (performance.now() - sent) / 1000);
      const attempt: PaymentAttempt = {
        outcome: outcome.kind,
        httpStatus: 'status' in outcome ? outcome.status : undefined,
        chargeId: outcome.kind === 'paid' ? outcome.chargeId : undefined,
        latencyMs: outcome.latencyMs,
      };
      if (outcome.kind === 'paid') {
        if (await settlePaid(ctx, job, 'pending', attempt)) stats.paid += 1;
        else stats.stale += 1;
        return;
      }
      if (outcome.kind === 'declined') {
        if (await settleFailed(ctx, job, 'pending', 'payment declined', attempt))
          stats.declined += 1;
        else stats.stale += 1;
        return;
      }
      if (outcome.kind === 'unknown') {
        if (await settleUnknown(ctx, job, attempt)) stats.unknown += 1;
        else stats.stale += 1;
        return;
      }
      await recordPayment(ctx.pool, job.id, attempt);
      const waitMs = Math.max(outcome.retryAfterMs, backoffMs(retry, opts.maxBackoffMs));
      // Still throttled after every retry, or told to wait longer than the lease allows for
      // (it covers waits up to maxBackoffMs): nothing was charged. Hand the job back, leased
      // until then, so no worker (this one included) charges it before the provider said.
      if (retry >= opts.maxRetries || waitMs > opts.maxBackoffMs) {
        const laterMs = retry >= opts.maxRetries ? Math.max(opts.retryLaterMs, waitMs) : waitMs;
        await extendPaymentLease(ctx.pool, job.id, laterMs);
        stats.handedBack += 1;
        return;
      }
      stats.retries += 1;
      await sleep(waitMs, abort.signal);
    }
  }

  async function loop(): Promise<void> {
    while (!runtime.stopping()) {
      runtime.beat();
      const free = opts.concurrency - running.size;
      if (free <= 0) {
        await Promise.race(running.values());
        continue;
      }
      let jobs: PaymentJob[];
      try {
        jobs = await leasePaymentJobs(ctx.pool, free, leaseMs);
        runtime.recovered('PostgreSQL');
      } catch (error) {
        stats.errors += 1;
        await runtime.failed('PostgreSQL', error);
        continue;
      }
      stats.claimed += jobs.length;
      for (const job of jobs) if (job.leaseExpired) stats.expiredLeases += 1;
      for (const job of jobs) {
        const work = runtime
          .inFlight(charge(job))
          .catch((error: unknown) => {
            // PG or Redis failed mid-settlement: the lease runs out and another try settles it.
            stats.errors += 1;
            const message = describe(error);
            if (message !== lastSettleError) {
              runtime.log.warn(
                { err: error },
                `a charge could not be settled (${message}); retried once its lease runs out`,
              );
              lastSettleError = message;
            }
          })
          .finally(() => {
            running.delete(job.id);
            stats.inFlight = running.size;
          });
        running.set(job.id, work);
      }
      stats.inFlight = running.size;
      if (jobs.length === 0) await runtime.pause(opts.pollMs);
    }
  }

  const done = loop();
  return {
    stats: () => ({ ...stats }),
    sinceProgressMs: () => runtime.sinceProgressMs(),
    done,
    async stop() {
      runtime.requestStop();
      const finished = Promise.all(running.values()).then(() => true);
      const inTime = await Promise.race([
        finished,
        sleep(opts.timeoutMs + 1_000).then(() => false),
      ]);
      if (!inTime) {
        const unfinished = [...running.keys()];
        abort.abort();
        await Promise.all(running.values());
        // If PostgreSQL is gone too, the leases simply run out.
        if (unfinished.length > 0)
          stats.leasesEnded += await endPaymentLeases(ctx.pool, unfinished).catch(() => 0);
      } else {
        abort.abort();
      }
      await done;
    },
  };
}
