// The workers' admin listener (--admin-port): GET /metrics with Prometheus names (fsale_
// prefix, counters _total, times _seconds) that follow the worker's own counters and the
// families only a histogram or a label can tell (batch sizes and times, charges by outcome and
// their latency), and GET /healthz, for probes and scrapes. The same mechanism as
// `serve --admin-port`.
import { describe, expect, it } from 'vitest';
import { parseRecord } from '../../src/cli/log.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { startFaultProxy, throughProxy } from '../helpers/fault-proxy.js';
import { appendOrders, buyers } from '../helpers/order-stream.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import {
  killProcess,
  startGateway,
  startOrderWorker,
  startPaymentWorker,
  stopProcess,
} from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

/**
 * The admin listener's URL a worker logged. Every test here leaves `--admin-host` at its
 * default, so each also proves the default is loopback.
 */
async function adminOf(proc: CliProcess): Promise<string> {
  const url = await proc.waitFor(/admin listener on (http:\/\/[\d.:[\]]+)/);
  expect(new URL(url).hostname, 'the default --admin-host').toBe('127.0.0.1');
  return url;
}

async function scrape(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/** The value of the sample `series` (a name, with its labels if any) in a scrape. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function metric(url: string, name: string): Promise<number | undefined> {
  return sample(await scrape(url), name);
}

/** `count` orders of a seeded product, accepted and persisted by a real order worker: pending. */
async function persistedOrders(s: TestServices, productId: string, count: number): Promise<void> {
  await appendOrders(s, productId, buyers(productId, count));
  const orders = startOrderWorker(s.env, ['--block', '100ms']);
  try {
    await until('the orders to be persisted', () => orders.last()?.persisted === count);
  } finally {
    await stopProcess(orders.proc);
  }
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

  it('work orders: /healthz is 503 stuck once a batch has hung on a silent PostgreSQL connection for --stuck-after, and 200 while idle', async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'hung', stock: 100 });
    const pg = new URL(s.databaseUrl);
    const proxy = await startFaultProxy(pg.hostname, Number(pg.port || 5432));
    const worker = startCli(
      ['work', 'orders', '--admin-port', '0', '--block', '100ms', '--stuck-after', '2s'],
      { ...s.env, DATABASE_URL: throughProxy(s.databaseUrl, proxy) },
    );
    try {
      const url = await adminOf(worker);
      // Idle for longer than --stuck-after: the loop goes round, so it is alive.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // The connections stay open and go silent (a partition, not a refusal): the batch's
      // queries wait for an answer that does not come.
      proxy.setMode({ kind: 'latency', ms: 600_000 });
      await appendOrders(s, 'hung', buyers('hung', 3));
      let stuck: unknown;
      await until('the worker to be reported stuck', async () => {
        const answer = await fetch(`${url}/healthz`);
        if (answer.status === 503) stuck = await answer.json();
        return answer.status === 503;
      });
      expect(stuck).toMatchObject({ status: 'stuck', stuckAfterSeconds: 2 });
    } finally {
      await killProcess(worker);
      await proxy.close();
    }
  });

  it('work payments and reconcile expose theirs the same way', async () => {
    const s = await useTestServices();
    const payments = startCli(['work', 'payments', '--admin-port', '0'], s.env);
    const reconcile = startCli(['reconcile', '--interval', '200ms', '--admin-port', '0'], s.env);
    try {
      const [p, r] = await Promise.all([adminOf(payments), adminOf(reconcile)]);
      expect(await metric(p, 'fsale_payments_claimed_total')).toBe(0);
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

  it('work orders: batch sizes and times are histograms, rows/s is rate() of the counter, and a scrape moves no rate window', async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'batches', stock: 1000 });
    // No status record before the last: the 'stopped' record's rate covers the whole run.
    const worker = startCli(
      [
        'work',
        'orders',
        '--json',
        '--admin-port',
        '0',
        '--block',
        '100ms',
        '--batch',
        '50',
        '--status-interval',
        '1h',
      ],
      s.env,
    );
    try {
      const url = await adminOf(worker);
      await worker.waitFor(/"event":"(started)"/);
      await appendOrders(s, 'batches', buyers('batches', 1000));
      // Scraped again and again while it persists (the old gauge reset the rate window here).
      await until('the metrics to count the persisted orders', async () => {
        return (await metric(url, 'fsale_orders_persisted_total')) === 1000;
      });
      const text = await scrape(url);
      const batches = sample(text, 'fsale_orders_batches_total') ?? 0;
      expect(text).toMatch(/^# TYPE fsale_orders_batch_entries histogram$/m);
      expect(text).toMatch(/^# TYPE fsale_orders_batch_duration_seconds histogram$/m);
      // Every entry is in one acknowledged batch, and every batch is observed once.
      expect(sample(text, 'fsale_orders_batch_entries_sum')).toBe(1000);
      expect(sample(text, 'fsale_orders_batch_entries_count')).toBe(batches);
      expect(sample(text, 'fsale_orders_batch_duration_seconds_count')).toBe(batches);
      // No batch holds more than --batch entries of one stream.
      expect(sample(text, 'fsale_orders_batch_entries_bucket{le="50"}')).toBe(batches);
      expect(batches).toBeGreaterThanOrEqual(20);
      expect(sample(text, 'fsale_orders_batch_duration_seconds_sum')).toBeGreaterThan(0);
      // Gone: a gauge without a unit that scrapes reset, and lifetime percentiles.
      expect(text).not.toMatch(/^fsale_orders_rate /m);
      expect(text).not.toMatch(/^fsale_orders_batch_p\d+_seconds /m);
    } finally {
      await stopProcess(worker);
    }
    const stopped = worker
      .output()
      .split('\n')
      .map((line) => parseRecord(line))
      .find((record) => record?.event === 'stopped');
    expect(stopped?.persisted).toBe(1000);
    expect(stopped?.rate).toBeGreaterThan(0);
  });

  it('work payments: charges by outcome and their latency as the worker timed them, as PostgreSQL recorded them; expired leases counted', async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'charges', stock: 300 });
    await persistedOrders(s, 'charges', 300);
    // 40 of them were leased by a worker that died: their leases ran out.
    const expired = await s.pool.query(
      `UPDATE orders SET payment_lease_until = now() - interval '1 second'
        WHERE id IN (SELECT id FROM orders WHERE product_id = 'charges' ORDER BY id LIMIT 40)`,
    );
    expect(expired.rowCount).toBe(40);
    const gateway = await startGateway(s.env, 11);
    const payments = startPaymentWorker({ ...s.env, FSALE_GATEWAY_URL: gateway.url }, [
      '--admin-port',
      '0',
      '--timeout',
      '500ms',
    ]);
    try {
      const url = await adminOf(payments.proc);
      await until('every order charged', async () => {
        const { rows } = await s.pool.query<{ open: number }>(
          "SELECT count(*)::int AS open FROM orders WHERE product_id = 'charges' AND status = 'pending'",
        );
        return rows[0]?.open === 0;
      });
      const { rows } = await s.pool.query<{ outcome: string; n: number; seconds: number }>(
        `SELECT p.outcome, count(*)::int AS n, sum(p.latency_ms)::float8 / 1000 AS seconds
           FROM payments p JOIN orders o ON o.id = p.order_id
          WHERE o.product_id = 'charges' GROUP BY p.outcome`,
      );
      const text = await scrape(url);
      expect(text).toMatch(/^# TYPE fsale_payments_charges_total counter$/m);
      expect(text).toMatch(/^# TYPE fsale_payments_charge_duration_seconds histogram$/m);
      expect(rows.map((r) => r.outcome)).toContain('paid');
      for (const { outcome, n, seconds } of rows) {
        const labels = `{outcome="${outcome}"}`;
        // Counted when the answer came, before its settlement: every one is in by now.
        expect(sample(text, `fsale_payments_charges_total${labels}`), outcome).toBe(n);
        expect(sample(text, `fsale_payments_charge_duration_seconds_count${labels}`), outcome).toBe(
          n,
        );
        // Timed around the whole call: never shorter than the provider client's own (ms) timing.
        const timed = sample(text, `fsale_payments_charge_duration_seconds_sum${labels}`) ?? 0;
        expect(timed, outcome).toBeGreaterThanOrEqual(seconds - n * 0.0005);
      }
      expect(text).not.toMatch(/^fsale_payments_(paid|declined|unknown)_total /m);
      // Every lease that ran out and was taken again: the dead worker's, and any job handed
      // back for later that came due.
      expect(sample(text, 'fsale_payments_expired_leases_total')).toBe(
        40 + (sample(text, 'fsale_payments_handed_back_total') ?? 0),
      );
      expect(sample(text, 'fsale_payments_claimed_total')).toBeGreaterThanOrEqual(300);
    } finally {
      await stopProcess(payments.proc);
      await stopProcess(gateway.proc);
    }
  });

  it("reconcile: the deferred orders are a gauge of the last pass's backlog, back to 0 once they are settled", async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'deferred', stock: 10 });
    await persistedOrders(s, 'deferred', 3);
    // What a payment worker leaves when a charge times out.
    await s.pool.query(
      "UPDATE orders SET status = 'needs_reconciliation' WHERE product_id = 'deferred'",
    );
    const gateway = await startGateway(s.env, 5);
    // The provider answers 503 to every void at first: nothing can be settled.
    const proxy = await startFaultProxy('127.0.0.1', Number(new URL(gateway.url).port), {
      kind: 'http',
      status: 503,
    });
    const reconcile = startCli(['reconcile', '--interval', '100ms', '--admin-port', '0'], {
      ...s.env,
      FSALE_GATEWAY_URL: proxy.url,
    });
    try {
      const url = await adminOf(reconcile);
      await until('a pass to defer the three orders', async () => {
        return (await metric(url, 'fsale_reconcile_deferred_orders')) === 3;
      });
      const text = await scrape(url);
      expect(text).toMatch(/^# TYPE fsale_reconcile_deferred_orders gauge$/m);
      expect(text).not.toMatch(/fsale_reconcile_deferred_total/);
      const passes = sample(text, 'fsale_reconcile_passes_total') ?? 0;
      await until('more passes, each deferring the same three', async () => {
        return ((await metric(url, 'fsale_reconcile_passes_total')) ?? 0) >= passes + 3;
      });
      expect(await metric(url, 'fsale_reconcile_deferred_orders')).toBe(3);
      proxy.setMode({ kind: 'pass' });
      await until('the voids to settle them', async () => {
        return (await metric(url, 'fsale_reconcile_failed_total')) === 3;
      });
      await until('the backlog to be gone', async () => {
        return (await metric(url, 'fsale_reconcile_deferred_orders')) === 0;
      });
    } finally {
      await stopProcess(reconcile);
      await proxy.close();
      await stopProcess(gateway.proc);
    }
  });
});
