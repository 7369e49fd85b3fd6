// The workers' own Prometheus families, beside the status fields every worker exports
// (src/cli/status-metrics.ts): what a status field cannot tell, distributions and counts by
// label. Each is registered on the worker process's registry; a worker built without them
// (tests, benchmarks) observes nothing.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ChargeOutcome } from '../payments/provider-client.js';

/** Shared by the order worker's batch times and the payment worker's charge times. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class OrderWorkerMetrics {
  private readonly batchEntries: Histogram;
  private readonly batchDuration: Histogram;

  constructor(readonly registry: Registry) {
    this.batchEntries = new Histogram({
      name: 'fsale_orders_batch_entries',
      help: 'Stream entries per acknowledged batch (one PostgreSQL transaction each); at most --batch per stream read',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers: [registry],
    });
    this.batchDuration = new Histogram({
      name: 'fsale_orders_batch_duration_seconds',
      help: 'Time from receiving a batch to acknowledging it (persist, dead-letter, XACK)',
      buckets: SECONDS_BUCKETS,
      registers: [registry],
    });
  }

  /** One batch of `entries` acknowledged `seconds` after it was received. */
  batchDone(entries: number, seconds: number): void {
    this.batchEntries.observe(entries);
    this.batchDuration.observe(seconds);
  }
}

export type ChargeKind = ChargeOutcome['kind'];

export class PaymentWorkerMetrics {
  private readonly charges: Counter<'outcome'>;
  private readonly chargeDuration: Histogram<'outcome'>;

  constructor(readonly registry: Registry) {
    this.charges = new Counter({
      name: 'fsale_payments_charges_total',
      help: "The provider's answers to this worker's charge requests, by outcome (paid, declined, retryable: 429/503, unknown: timeout or connection error)",
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.chargeDuration = new Histogram({
      name: 'fsale_payments_charge_duration_seconds',
      help: 'Time from sending a charge request to its answer (or its timeout), as this worker saw it, by outcome',
      labelNames: ['outcome'],
      buckets: SECONDS_BUCKETS,
      registers: [registry],
    });
  }

  /** One charge request answered (or given up) after `seconds`. */
  charged(outcome: ChargeKind, seconds: number): void {
    this.charges.inc({ outcome });
    this.chargeDuration.observe({ outcome }, seconds);
  }
}
