import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Backpressure } from './backpressure.js';

/** The API's Prometheus metrics, in a registry of its own (tests build many apps per process). */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'status'>;
  readonly latency: Histogram<'route'>;
  readonly buyOutcomes: Counter<'outcome'>;

  constructor(backpressure?: Backpressure) {
    this.requests = new Counter({
      name: 'fsale_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'fsale_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.buyOutcomes = new Counter({
      name: 'fsale_buy_outcomes_total',
      help: 'Buy answers by outcome (accepted, sold_out, limit_reached, replayed, ...)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'fsale_order_stream_backlog',
      help: 'Order stream entries not yet persisted (undelivered + unacknowledged), per product',
      labelNames: ['product'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [product, n] of backpressure?.state.queue ?? []) this.set({ product }, n);
      },
    });
    new Gauge({
      name: 'fsale_event_loop_delay_p99_seconds',
      help: 'p99 event loop delay over the last backpressure sample',
      registers: [this.registry],
      collect() {
        this.set((backpressure?.state.eventLoopDelayMs ?? 0) / 1000);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'fsale_' });
  }
}
