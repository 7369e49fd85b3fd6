// What every long-running worker shares (the order and payment workers, reconcile's loop):
// a stop that wakes every pause at once, one backoff, outage logging (a line when a service
// starts failing or fails differently, one when it recovers, never one per retry) and the
// validation of numeric options. See docs/ARCHITECTURE.md section 1.
import type { Logger } from 'pino';
import { describe, UsageError } from '../domain/errors.js';

/** What failed: a service, or (reconcile) a whole pass, which touches several. */
export type Service = 'Redis' | 'PostgreSQL' | 'reconcile pass';

/**
 * Exponential backoff with jitter: 100 ms, 200 ms, ... capped at `capMs`, each drawn
 * uniformly from the upper half so that many workers recovering together spread out.
 */
export function backoffMs(attempt: number, capMs = 5_000, random: () => number = Math.random) {
  const ceiling = Math.min(capMs, 100 * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Waits `ms`, or less if `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return Promise.resolve();
  return new Promise<void>((resolve) => {
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
}

/**
 * `value` (or `fallback` when unset) as an integer of at least `min`; a UsageError otherwise.
 * `name` is what the user typed: the flag (`--claim-idle`), or the option's own name when no
 * flag sets it (`pollMs`).
 */
export function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 1,
): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < min) {
    const what = min === 1 ? 'a positive integer' : `an integer of at least ${min}`;
    throw new UsageError(`${name} must be ${what}, got ${chosen}`);
  }
  return chosen;
}

export class WorkerRuntime {
  /** Failed attempts (a service unreachable, a deadlock, ...) that were retried. */
  retries = 0;
  private readonly stopSignal = new AbortController();
  private readonly failing = new Map<
    Service,
    { since: number; message: string; attempt: number }
  >();

  /** When the loop last went round (performance.now()), or the end of the pause it is in. */
  private progressAt = performance.now();
  /** Work in flight beside the loop (a batch, a charge) -> when it started. */
  private readonly inFlightSince = new Map<object, number>();

  constructor(readonly log: Logger) {}

  /** The loop went round, or a step of a long round (an order of a reconcile pass) is done. */
  beat(): void {
    this.progressAt = Math.max(this.progressAt, performance.now());
  }

  /** `work`, counted as in flight until it settles (see sinceProgressMs). */
  async inFlight<T>(work: Promise<T>): Promise<T> {
    const token = {};
    this.inFlightSince.set(token, performance.now());
    try {
      return await work;
    } finally {
      this.inFlightSince.delete(token);
    }
  }

  /**
   * How long the worker has gone without progress: since its loop last went round (waits it
   * chose, pauses and Retry-After, not counted), or the age of its oldest work in flight, the
   * longer. What `/healthz` on the admin port judges liveness by: a loop, a batch or a charge
   * awaiting a connection that went silent grows it without bound. Work retrying through an
   * outage grows it too.
   */
  sinceProgressMs(): number {
    const now = performance.now();
    let since = now - this.progressAt;
    for (const started of this.inFlightSince.values()) since = Math.max(since, now - started);
    return Math.max(0, since);
  }

  /** A method, not a field read: it changes while work is awaited, which narrowing ignores. */
  stopping(): boolean {
    return this.stopSignal.signal.aborted;
  }

  /** Aborted when the worker is asked to stop. */
  get signal(): AbortSignal {
    return this.stopSignal.signal;
  }

  /** Asks the worker to stop: every pause in progress ends now, later ones return at once. */
  requestStop(): void {
    this.stopSignal.abort();
  }

  pause(ms: number): Promise<void> {
    // A wait the loop chose: not a lack of progress (sinceProgressMs).
    this.progressAt = Math.max(this.progressAt, performance.now() + ms);
    return sleep(ms, this.stopSignal.signal);
  }

  /** Counts and logs a failed attempt, then backs off (cut short by a stop). */
  async failed(service: Service, error: unknown, capMs = 5_000): Promise<void> {
    this.retries += 1;
    const message = describe(error);
    const previous = this.failing.get(service);
    if (previous?.message !== message)
      this.log.warn({ service, err: error }, `${service} error: ${message}; retrying with backoff`);
    const attempt = (previous?.attempt ?? 0) + 1;
    this.failing.set(service, { since: previous?.since ?? Date.now(), message, attempt });
    await this.pause(backoffMs(attempt, capMs));
  }

  /** Logs the end of an outage, if `service` was failing. */
  recovered(service: Service): void {
    const previous = this.failing.get(service);
    if (previous === undefined) return;
    this.failing.delete(service);
    const seconds = (Date.now() - previous.since) / 1000;
    this.log.info(
      { service, outageSeconds: seconds },
      `${service} recovered after ${seconds.toFixed(1)} s`,
    );
  }

  /**
   * Runs `work` until it succeeds, backing off between attempts; undefined when asked to stop
   * while it fails (`leftBehind` says what stays undone, e.g. "a batch not committed").
   */
  async retrying<T>(
    service: Service,
    leftBehind: string,
    work: () => Promise<T>,
  ): Promise<T | undefined> {
    for (;;) {
      try {
        const result = await work();
        this.recovered(service);
        return result;
      } catch (error) {
        if (this.stopping()) {
          this.log.warn(
            { err: error },
            `stopping with ${leftBehind}: ${describe(error)}; it stays pending and is redelivered`,
          );
          return undefined;
        }
        await this.failed(service, error);
        if (this.stopping()) return undefined;
      }
    }
  }
}
