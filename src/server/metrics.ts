import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Backpressure } from './backpressure.js';
import type { SseHub } from './sse-hub.js';

/** What the API's gauges read at scrape time. */
export interface ApiGaugeSources {
  backpressure?: Backpressure;
  sse?: SseHub;
  /** Units left per product, read from Redis when scraped (not on the buy path). */
  stock?: () => Promise<Map<string, number>>;
}

/** The API's Prometheus metrics, in a registry of its own (tests build many apps per process). */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'status'>;
  readonly latency: Histogram<'route'>;
  readonly buyOutcomes: Counter<'outcome'>;

  constructor({ backpressure, sse, stock }: ApiGaugeSources = {}) {
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
      // Under `serve --api-workers` every process samples the same streams: not a sum.
      aggregator: 'max',
      collect() {
        this.reset();
        for (const [product, n] of backpressure?.state.queue ?? []) this.set({ product }, n);
      },
    });
    new Gauge({
      name: 'fsale_event_loop_delay_p99_seconds',
      help: 'p99 event loop delay over the last backpressure sample (the worst process)',
      registers: [this.registry],
      aggregator: 'max',
      collect() {
        this.set((backpressure?.state.eventLoopDelayMs ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'fsale_stock_remaining',
      help: 'Units left per product, as Redis holds them (the buy path decrements it)',
      labelNames: ['product'],
      registers: [this.registry],
      // Every process reads the same Redis keys: not a sum.
      aggregator: 'max',
      async collect() {
        this.reset();
        for (const [product, n] of (await stock?.()) ?? []) this.set({ product }, n);
      },
    });
    new Gauge({
      name: 'fsale_sse_clients',
      help: 'Open server-sent event streams by kind (stock, order)',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        for (const kind of ['stock', 'order'] as const) this.set({ kind }, sse?.count(kind) ?? 0);
      },
    });
    // The hub's own counters (SseHub.stats), read at scrape time: one per process, summed.
    // With a label, each stat is one value of it; without, the counter is its one stat.
    type HubStat = keyof SseHub['stats'];
    const hubCounter = (name: string, help: string, stats: readonly HubStat[], label?: string) =>
      new Counter({
        name,
        help,
        labelNames: label === undefined ? [] : [label],
        registers: [this.registry],
        collect() {
          this.reset();
          if (sse === undefined) return;
          for (const stat of stats)
            this.inc(label === undefined ? {} : { [label]: stat }, sse.stats[stat]);
        },
      });
    hubCounter(
      'fsale_sse_events_total',
      'Stream event sends by result: delivered, or skipped for a client still taking the last one (it is sent the latest event once it drains, so a skip is not a loss)',
      ['delivered', 'skipped'],
      'result',
    );
    hubCounter(
      'fsale_sse_streams_refused_total',
      'Streams refused at once because their budget (total or per address/user) was full',
      ['refused'],
    );
    hubCounter(
      'fsale_sse_streams_ended_total',
      'Streams the API ended: expired (max age: the client reconnects at once), dropped (a client that stopped reading)',
      ['expired', 'dropped'],
      'reason',
    );
    collectDefaultMetrics({ register: this.registry, prefix: 'fsale_' });
  }
}
