import { setMaxListeners } from 'node:events';
import type { Redis } from 'ioredis';
import { ORDER_AMOUNT_CENTS_SQL, toOrderRecord, type OrderRecord } from '../db/orders.js';
import type { Pool } from '../db/pool.js';
import type { GatewayClient } from '../gateway/client.js';
import {
  recordPayment,
  settleFailed,
  settlePaid,
  settleUnknown,
  type PaymentAttempt,
} from '../sale/settle.js';
import { backoffMs } from './failures.js';

export interface PaymentWorkerContext {
  pool: Pool;
  redis: Redis;
  keyPrefix: string;
  gateway: GatewayClient;
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
  claimed: number;
  paid: number;
  declined: number;
  unknown: number;
  retries: number;
  handedBack: number;
  /** Transitions refused because the order had moved on (a stale or duplicate job). */
  stale: number;
  errors: number;
  inFlight: number;
}

export interface PaymentWorker {
  stats: PaymentWorkerStats;
  /** Stops taking jobs, lets in-flight charges finish (up to one timeout), hands back the rest. */
  stop(): Promise<void>;
  done: Promise<void>;
}

interface Job extends OrderRecord {
  amountCents: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', wake);
      resolve();
    }, ms);
    signal?.addEventListener('abort', wake, { once: true });
  });

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
  const opts = { ...PAYMENT_WORKER_DEFAULTS, ...options };
  // A lease must outlive the slowest job: every retry timing out, plus the backoffs.
  const leaseMs = (opts.timeoutMs + opts.maxBackoffMs) * (opts.maxRetries + 1) + opts.timeoutMs;
  const stats: PaymentWorkerStats = {
    claimed: 0,
    paid: 0,
    declined: 0,
    unknown: 0,
    retries: 0,
    handedBack: 0,
    stale: 0,
    errors: 0,
    inFlight: 0,
  };
  const running = new Map<string, Promise<void>>();
  const abort = new AbortController();
  // Every in-flight charge listens to it (via AbortSignal.any): up to `concurrency` at once.
  setMaxListeners(0, abort.signal);
  let stopping = false;

  async function claim(limit: number): Promise<Job[]> {
    const { rows } = await ctx.pool.query<{
      id: string;
      product_id: string;
      user_id: string;
      qty: number;
      status: 'pending';
      amount_cents: string;
    }>(
      `UPDATE orders o
          SET payment_lease_until = now() + $2 * interval '1 millisecond',
              payment_attempts = payment_attempts + 1
         FROM products p
        WHERE p.id = o.product_id
          AND o.id IN (SELECT id FROM orders
                        WHERE status = 'pending'
                          AND (payment_lease_until IS NULL OR payment_lease_until < now())
                        ORDER BY persisted_at
                        LIMIT $1
                        FOR UPDATE SKIP LOCKED)
      RETURNING o.id, o.product_id, o.user_id, o.qty, o.status, ${ORDER_AMOUNT_CENTS_SQL} AS amount_cents`,
      [limit, leaseMs],
    );
    return rows.map((row) => ({ ...toOrderRecord(row), amountCents: Number(row.amount_cents) }));
  }

  async function charge(job: Job): Promise<void> {
    for (let retry = 0; ; retry++) {
      const outcome = await ctx.gateway.charge(
        job.id,
        job.amountCents,
        opts.timeoutMs,
        abort.signal,
      );
      if (abort.signal.aborted) return; // shutting down: the lease is handed back below
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
        await ctx.pool.query(
          `UPDATE orders SET payment_lease_until = now() + $2 * interval '1 millisecond'
            WHERE id = $1 AND status = 'pending'`,
          [job.id, laterMs],
        );
        stats.handedBack += 1;
        return;
      }
      stats.retries += 1;
      await sleep(waitMs, abort.signal);
    }
  }

  async function handBack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await ctx.pool
      .query(
        `UPDATE orders SET payment_lease_until = NULL WHERE id = ANY($1::uuid[]) AND status = 'pending'`,
        [ids],
      )
      .catch(() => undefined); // if PG is gone too, the leases simply run out
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      const free = opts.concurrency - running.size;
      if (free <= 0) {
        await Promise.race(running.values());
        continue;
      }
      let jobs: Job[];
      try {
        jobs = await claim(free);
        failures = 0;
      } catch {
        stats.errors += 1;
        await sleep(backoffMs(failures++, 5_000), abort.signal);
        continue;
      }
      stats.claimed += jobs.length;
      for (const job of jobs) {
        const work = charge(job)
          .catch(() => {
            // PG or Redis failed mid-settlement: the lease runs out and another try settles it.
            stats.errors += 1;
          })
          .finally(() => {
            running.delete(job.id);
            stats.inFlight = running.size;
          });
        running.set(job.id, work);
      }
      stats.inFlight = running.size;
      if (jobs.length === 0) await sleep(opts.pollMs, abort.signal);
    }
  }

  const done = loop();
  return {
    stats,
    done,
    async stop() {
      stopping = true;
      const finished = Promise.all(running.values()).then(() => true);
      const inTime = await Promise.race([
        finished,
        sleep(opts.timeoutMs + 1_000).then(() => false),
      ]);
      if (!inTime) {
        const unfinished = [...running.keys()];
        abort.abort();
        await Promise.all(running.values());
        await handBack(unfinished);
      } else {
        abort.abort();
      }
      await done;
    },
  };
}
