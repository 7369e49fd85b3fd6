// Scenario 4: the payment worker SIGKILLed with charges in flight, three times. The gateway
// runs with real-looking latency (speed 2: median ~325 ms, 1 % hangs), so every kill leaves
// charges the gateway may complete after the worker is gone. A restarted worker takes the
// leased jobs over once their lease runs out and charges them again under the same
// idempotency key (the order id). Afterwards, and after `reconcile --once`, every order is
// paid or payment_failed, no order was charged twice, the ledger and PostgreSQL agree, and
// the audit holds. Kill points come from a seeded PRNG (seed printed).
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk, successfulCharges } from '../helpers/audit.js';
import { buyers, crowd, tally } from '../helpers/crowd.js';
import { faultSeed, prng } from '../helpers/fault-schedule.js';
import {
  killProcess,
  NO_LOAD_SHEDDING,
  reconcileOnce,
  startGateway,
  startOrderWorker,
  startPaymentWorker,
  startServe,
  stopProcess,
  waitStarted,
} from '../helpers/stack.js';
import { pgOrders, redisStock, waitCharged, waitDrained } from '../helpers/sale-state.js';
import { until } from '../helpers/wait.js';

const ORDERS = 300;
const KILLS = 3;

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

async function settledCount(): Promise<number> {
  const pg = await pgOrders(s, 'charge');
  return (
    (pg.byStatus.paid ?? 0) +
    (pg.byStatus.payment_failed ?? 0) +
    (pg.byStatus.needs_reconciliation ?? 0)
  );
}

async function leasedPending(): Promise<number> {
  const { rows } = await s.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM orders WHERE product_id = 'charge' AND status = 'pending'
       AND payment_lease_until > now()`,
  );
  return rows[0]?.n ?? 0;
}

describe('scenario 4: payment worker SIGKILL', () => {
  it('killed with charges in flight 3 times: no double charge, every order terminal after reconcile, audit OK', async () => {
    const seedValue = faultSeed('scenario 4');
    const random = prng(seedValue);
    await seed(s, { productId: 'charge', stock: ORDERS, priceCents: 1299 });
    const gateway = await startGateway(s.env, seedValue % 1000, 2);
    const env = { ...s.env, FSALE_GATEWAY_URL: gateway.url };
    const api = await startServe(env, NO_LOAD_SHEDDING);
    const orders = startOrderWorker(env);

    const answers = await crowd(() => api.url, 'charge', buyers('pay', ORDERS), 32);
    expect(tally(answers)).toEqual({ '202': ORDERS });
    const accepted = new Set(answers.map((a) => a.orderId ?? ''));
    await waitDrained(s, 'charge');

    const paymentArgs = [
      '--timeout',
      '2500ms',
      '--max-retries',
      '1',
      '--max-backoff',
      '200ms',
      '--concurrency',
      '48',
    ];
    // Kill points spread over the run: after roughly 10-25 %, 35-50 %, 60-75 % settled.
    const killAt = Array.from({ length: KILLS }, (_, k) =>
      Math.floor(ORDERS * (0.1 + k * 0.25 + random() * 0.15)),
    );
    const inFlightAtKill: number[] = [];
    for (const threshold of killAt) {
      const payments = startPaymentWorker(env, paymentArgs);
      await until(`${threshold} orders settled before the kill`, async () => {
        if (payments.proc.child.exitCode !== null) {
          throw new Error(`payment worker exited: ${payments.proc.output()}`);
        }
        return (await settledCount()) >= threshold;
      });
      // Kill only while charges are in flight (this worker holds leases on pending orders).
      await until('charges in flight', async () => (await leasedPending()) > 0, 60_000, 20);
      inFlightAtKill.push(await leasedPending());
      await killProcess(payments.proc);
    }
    console.log(
      `scenario 4: killed at ${JSON.stringify(killAt)} settled, leases in flight ${JSON.stringify(inFlightAtKill)}`,
    );
    for (const n of inFlightAtKill) expect(n).toBeGreaterThan(0);

    // The last worker waits the leases out, charges what is left, and stops cleanly.
    const last = startPaymentWorker(env, paymentArgs);
    await waitStarted(last, 'the last payment worker');
    await waitCharged(s, 'charge');
    expect(await stopProcess(last.proc)).toEqual({ code: 0, signal: null });
    await reconcileOnce(env);

    const pg = await pgOrders(s, 'charge');
    expect(pg.ids).toEqual(accepted);
    expect(pg.rows).toBe(ORDERS);
    // Every order terminal.
    expect(
      Object.keys(pg.byStatus).filter((st) => st !== 'paid' && st !== 'payment_failed'),
    ).toEqual([]);
    expect(pg.byStatus.paid).toBeGreaterThan(0);

    // The ledger: at most one successful charge per order, exactly the paid orders.
    const ledger = (await fetchLedger(gateway.url)).filter((c) => accepted.has(c.orderId));
    const charges = successfulCharges(ledger);
    expect([...charges].filter(([, n]) => n > 1)).toEqual([]);
    const paid = await s.pool.query<{ id: string }>(
      "SELECT id::text AS id FROM orders WHERE product_id = 'charge' AND status = 'paid'",
    );
    expect(new Set(charges.keys())).toEqual(new Set(paid.rows.map((r) => r.id)));
    for (const c of ledger.filter((x) => x.status === 'succeeded'))
      expect(c.amountCents).toBe(1299);
    // PG recorded one charge id per paid order, whatever the retries and takeovers.
    const chargeIds = await s.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (SELECT order_id FROM payments WHERE outcome = 'paid'
         GROUP BY order_id HAVING count(DISTINCT gateway_charge_id) > 1) d`,
    );
    expect(chargeIds.rows[0]?.n).toBe(0);

    // Stock: declines released exactly once, in PG and Redis.
    const failed = pg.byStatus.payment_failed ?? 0;
    const releases = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM stock_releases WHERE product_id = 'charge'",
    );
    expect(releases.rows[0]?.n).toBe(failed);
    expect(await redisStock(s, 'charge')).toBe(failed);
    expect(pg.remaining).toBe(failed);
    expectAuditOk(await audit(s, gateway.url));

    for (const proc of [orders.proc, api.proc, gateway.proc]) {
      expect(await stopProcess(proc)).toEqual({ code: 0, signal: null });
    }
  });
});
