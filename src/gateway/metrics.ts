// The mock provider's Prometheus metrics (served by `fsale gateway --admin-port`, the admin
// listener every long-running process shares: src/server/admin.ts): charge answers by outcome,
// how long each took to answer, what is in flight and how much the ledger holds.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChargeAnswer, VoidAnswer } from './provider.js';

/** A charge's outcome as a label; replays of a final answer are counted apart. */
export function chargeOutcome(answer: ChargeAnswer): string {
  switch (answer.kind) {
    case 'succeeded':
    case 'declined':
      return answer.replayed ? 'replayed' : answer.kind;
    case 'unavailable':
      return 'unavailable';
    case 'rateLimited':
      return 'rate_limited';
    case 'hang':
      return 'hung';
    case 'keyReused':
      return 'key_reused';
    case 'voided':
      return 'voided';
  }
}

function voidOutcome(answer: VoidAnswer): string {
  if (answer.kind === 'voided') return answer.replayed ? 'replayed' : 'voided';
  return answer.kind === 'final' ? 'charge_exists' : 'in_flight';
}

export interface GatewayGauges {
  inFlight: () => number;
  ledgerEntries: () => number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly charges: Counter<'outcome'>;
  private readonly voids: Counter<'outcome'>;
  private readonly chargeDuration: Histogram<'outcome'>;

  private gauges: GatewayGauges = { inFlight: () => 0, ledgerEntries: () => 0 };

  /** `processMetrics`: also the process's own (CPU, memory, event loop), for a real process. */
  constructor(options: { processMetrics?: boolean } = {}) {
    const read = (gauge: keyof GatewayGauges) => () => this.gauges[gauge]();
    this.charges = new Counter({
      name: 'fsale_gateway_charges_total',
      help: 'Charge requests by outcome (succeeded, declined, replayed, unavailable, rate_limited, hung, key_reused, voided)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.voids = new Counter({
      name: 'fsale_gateway_voids_total',
      help: 'Void requests by outcome (voided, replayed, charge_exists, in_flight)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.chargeDuration = new Histogram({
      name: 'fsale_gateway_charge_duration_seconds',
      help: 'Time from a charge request to its answer, by outcome (hung charges are never answered)',
      labelNames: ['outcome'],
      // The model's latency: median 650 ms, p95 2.3 s, divided by --speed.
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    const inFlight = read('inFlight');
    const ledgerEntries = read('ledgerEntries');
    new Gauge({
      name: 'fsale_gateway_charges_in_flight',
      help: 'Charges waiting out their latency now',
      registers: [this.registry],
      collect() {
        this.set(inFlight());
      },
    });
    new Gauge({
      name: 'fsale_gateway_ledger_entries',
      help: 'Keys the in-memory ledger holds (charged, declined or voided)',
      registers: [this.registry],
      collect() {
        this.set(ledgerEntries());
      },
    });
    if (options.processMetrics === true) {
      collectDefaultMetrics({ register: this.registry, prefix: 'fsale_gateway_' });
    }
  }

  /** The provider whose in-flight charges and ledger the gauges report. */
  track(gauges: GatewayGauges): void {
    this.gauges = gauges;
  }

  /** One charge answered (or hung) `seconds` after it arrived. */
  charged(answer: ChargeAnswer, seconds: number): void {
    const outcome = chargeOutcome(answer);
    this.charges.inc({ outcome });
    if (answer.kind !== 'hang') this.chargeDuration.observe({ outcome }, seconds);
  }

  voided(answer: VoidAnswer): void {
    this.voids.inc({ outcome: voidOutcome(answer) });
  }
}
