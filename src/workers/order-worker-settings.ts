// The order worker's settings: what `fsale work orders` turns its flags (and FSALE_FAULT) into.
import { hostname } from 'node:os';

/**
 * Test-only crash points (`FSALE_FAULT=orders:<point>`): the worker kills itself with
 * SIGKILL there, on the first batch, to prove a crash at that moment loses and duplicates
 * nothing.
 */
export type OrderWorkerFault = 'before-commit' | 'after-commit';

export interface OrderWorkerOptions {
  /** Consumer name in the group; unique per process. Default `<hostname>-<pid>`. */
  consumer?: string | undefined;
  /** COUNT of each XREADGROUP, per stream. */
  batch?: number | undefined;
  /**
   * Batches in flight at once (each in its own PG transaction): the next batch is read and
   * inserted while the previous one commits and is acknowledged.
   */
  concurrency?: number | undefined;
  /** How long one XREADGROUP waits for new entries. Bounds how long `stop()` takes when idle. */
  blockMs?: number | undefined;
  /** Entries pending longer than this are taken over with XAUTOCLAIM (their consumer died). */
  claimIdleMs?: number | undefined;
  /**
   * An entry delivered more often than this is persisted in a transaction of its own, apart
   * from its batch, and dead-lettered only if PostgreSQL refuses its data.
   */
  maxDeliveries?: number | undefined;
  /** How often the set of products is re-read, to pick up newly seeded ones. */
  productsRefreshMs?: number | undefined;
  fault?: OrderWorkerFault | undefined;
  /** What a fault does; default: SIGKILL this process. */
  onFault?: ((fault: OrderWorkerFault) => void) | undefined;
}

export const ORDER_WORKER_DEFAULTS = {
  batch: 500,
  concurrency: 2,
  blockMs: 1_000,
  // Comfortably above the worst batch time (tens of milliseconds, seconds in a bad moment):
  // claiming from a live but slow consumer is harmless (persisting is idempotent) but wasteful.
  claimIdleMs: 30_000,
  maxDeliveries: 5,
  productsRefreshMs: 1_000,
} as const;

/** Reads `FSALE_FAULT`: `orders:before-commit` or `orders:after-commit`; others are not ours. */
export function orderWorkerFault(value: string | undefined): OrderWorkerFault | undefined {
  if (value === 'orders:before-commit') return 'before-commit';
  if (value === 'orders:after-commit') return 'after-commit';
  return undefined;
}

export function defaultConsumerName(): string {
  return `${hostname()}-${process.pid}`;
}
