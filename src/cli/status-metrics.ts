// A long-running worker's status, served as Prometheus metrics on its admin listener (the
// mechanism `fsale serve --admin-port` uses, src/server/admin.ts): every numeric field of the
// status becomes `fsale_<worker>_<field in snake case>`. Fields named as counters are counters
// (`_total`), fields in milliseconds are gauges in seconds (`_seconds`), the rest gauges.
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

export function statusRegistry(
  worker: string,
  status: () => object,
  counters: readonly string[],
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: `fsale_${worker}_` });
  const sample = status();
  const last = new Map<string, number>();
  for (const [field, value] of Object.entries(sample)) {
    if (typeof value !== 'number') continue;
    const counter = counters.includes(field);
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
        name: metricName(worker, field, false),
        help,
        registers: [registry],
        collect() {
          this.set(field.endsWith('Ms') ? read() / 1000 : read());
        },
      });
    }
  }
  return registry;
}
