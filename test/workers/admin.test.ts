// The workers' admin listener (--admin-port): GET /metrics with Prometheus names (fsale_
// prefix, counters _total, times _seconds) that follow the worker's own counters, and
// GET /healthz, for probes and scrapes. The same mechanism as `serve --admin-port`.
import { describe, expect, it } from 'vitest';
import { startCli, type CliProcess } from '../helpers/process.js';
import { appendOrders, buyers } from '../helpers/order-stream.js';
import { seed } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';
import { stopProcess } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

async function adminOf(proc: CliProcess): Promise<string> {
  return proc.waitFor(/admin listener on (http:\/\/[\d.:[\]]+)/);
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('worker admin listeners', () => {
  it('work orders serves its counters as metrics and answers /healthz', async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'adm', stock: 100 });
    const worker = startCli(['work', 'orders', '--admin-port', '0', '--block', '100ms'], s.env);
    try {
      const url = await adminOf(worker);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect(await metric(url, 'fsale_orders_persisted_total')).toBe(0);
      await appendOrders(s, 'adm', buyers('adm', 7));
      await until('the metrics to count the persisted orders', async () => {
        return (await metric(url, 'fsale_orders_persisted_total')) === 7;
      });
      const text = await (await fetch(`${url}/metrics`)).text();
      expect(text).toMatch(/^# TYPE fsale_orders_persisted_total counter$/m);
      expect(text).toMatch(/^# TYPE fsale_orders_lag_seconds gauge$/m);
      expect(text).toMatch(/^fsale_orders_dead_lettered_total 0$/m);
      expect(text).toMatch(/^fsale_orders_process_cpu_seconds_total /m);
      expect((await fetch(`${url}/nothing`)).status).toBe(404);
    } finally {
      await stopProcess(worker);
    }
  });

  it('work payments and reconcile expose theirs the same way', async () => {
    const s = await useTestServices();
    const payments = startCli(['work', 'payments', '--admin-port', '0'], s.env);
    const reconcile = startCli(['reconcile', '--interval', '200ms', '--admin-port', '0'], s.env);
    try {
      const [p, r] = await Promise.all([adminOf(payments), adminOf(reconcile)]);
      expect(await metric(p, 'fsale_payments_paid_total')).toBe(0);
      expect(await metric(p, 'fsale_payments_in_flight')).toBe(0);
      await until('a reconcile pass to be counted', async () => {
        return ((await metric(r, 'fsale_reconcile_passes_total')) ?? 0) >= 1;
      });
      expect((await fetch(`${r}/healthz`)).status).toBe(200);
    } finally {
      await stopProcess(payments);
      await stopProcess(reconcile);
    }
  });
});
