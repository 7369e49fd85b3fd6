// A long-running worker's metrics, served on its admin listener (the mechanism
// `fsale serve --admin-port` uses, src/server/admin.ts): one registry per process with the
// process's own metrics under `fsale_<worker>_`, the worker's own families (histograms and
// labelled counters, src/workers/metrics.ts) and its status fields, each numeric field as
// `fsale_<worker>_<field in snake case>`. Fields named as counters are counters (`_total`),
// fields in milliseconds are gauges in seconds (`_seconds`), the rest gauges.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The metric name of one status field. */
export function metricName(worker: string, field: string, counter: boolean): string {
  const base = `fsale_${worker}_${snake(field.replace(/Ms$/, ''))}`;
  if (counter) return `${base}_total`;
  return field.endsWith('Ms') ? `${base}_seconds` : base;
}

/** A registry with the process's own metrics (CPU, memory, event loop) under `fsale_<worker>_`. */
export function workerRegistry(worker: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: `fsale_${worker}_` });
  return registry;
}

/** The numeric fields of a status. */
export type NumericField<S> = {
  [K in keyof S]: S[K] extends number ? K : never;
}[keyof S] &
  string;

export interface StatusMetrics<S extends object> {
  worker: string;
  /**
   * The status, read on every scrape: it must change nothing (a scrape that reset a rate
   * window would change what the status records say).
   */
  status: () => S;
  /** The fields that only grow. */
  counters: readonly NumericField<S>[];
  /** Fields a metric family of the worker's tells better (a histogram, a labelled counter). */
  omit?: readonly NumericField<S>[];
  /** Gauges named otherwise than their field, e.g. with their unit. */
  names?: Partial<Record<NumericField<S>, string>>;
}

/** Adds the status fields to `registry`, read from the status when scraped. */
export function addStatusMetrics<S extends object>(
  registry: Registry,
  options: StatusMetrics<S>,
): void {
  const { worker, status, counters, omit = [], names = {} } = options;
  const last = new Map<string, number>();
  for (const [field, value] of Object.entries(status()) as [string, unknown][]) {
    if (typeof value !== 'number' || (omit as readonly string[]).includes(field)) continue;
    const counter = (counters as readonly string[]).includes(field);
    const read = () => Number((status() as Record<string, unknown>)[field] ?? 0);
    const help = `${worker} worker status field ${field}`;
    if (counter) {
      new Counter({
        name: metricName(worker, field, true),
        help,
        registers: [registry],
        collect() {
          // The worker keeps the totals; the counter takes their growth since the last scrape.
          const now = read();
          const grown = now - (last.get(field) ?? 0);
          if (grown > 0) this.inc(grown);
          last.set(field, now);
        },
      });
    } else {
      new Gauge({
        name:
          (names as Record<string, string | undefined>)[field] ?? metricName(worker, field, false),
        help,
        registers: [registry],
        collect() {
          this.set(field.endsWith('Ms') ? read() / 1000 : read());
        },
      });
    }
  }
}
