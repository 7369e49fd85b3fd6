// Scenario 1: a flash crowd. 20,000 distinct buyers, one buy each, for 500 units through two
// API processes (`serve --api-workers 2`): exactly 500 are accepted, everyone else is told "sold
// out" (or to come back: 429/503), nobody gets a 5xx or a dropped connection; the workers
// then persist and charge every accepted order and the audit holds.
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk, successfulCharges } from '../helpers/audit.js';
import { buyers, crowd, tally } from '../helpers/crowd.js';
import {
  pgOrders,
  redisStock,
  streamState,
  waitCharged,
  waitDrained,
} from '../helpers/sale-state.js';
import {
  reconcileOnce,
  startGateway,
  startOrderWorker,
  startPaymentWorker,
  startServe,
  stopProcess,
} from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const BUYERS = 20_000;
const STOCK = 500;
const IN_FLIGHT = 200;

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

describe('scenario 1: flash crowd', () => {
  it('20,000 buyers for 500 units through 2 API processes: exactly 500 accepted, the rest refused cleanly, audit OK', async () => {
    await seed(s, { productId: 'crowd', stock: STOCK, priceCents: 2500, perUserLimit: 1 });
    const gateway = await startGateway(s.env, 101);
    const env = { ...s.env, FSALE_GATEWAY_URL: gateway.url };
    const api = await startServe(env, ['--api-workers', '2']);
    const orders = startOrderWorker(env, ['--claim-idle', '5s']);

    const list = buyers('fc', BUYERS);
    const started = performance.now();
    const answers = await crowd(() => api.url, 'crowd', list, IN_FLIGHT);
    const seconds = (performance.now() - started) / 1000;
    const counts = tally(answers);
    console.log(
      `scenario 1: ${BUYERS} buys in ${seconds.toFixed(1)} s (${Math.round(BUYERS / seconds)}/s): ${JSON.stringify(counts)}`,
    );

    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(STOCK);
    expect(new Set(accepted.map((a) => a.orderId)).size).toBe(STOCK);
    // Everyone else: sold out, or "come back later"; never a 5xx, never a dropped connection.
    for (const [label, n] of Object.entries(counts)) {
      expect({ label, n, allowed: ['202', '409', '429', '503'].includes(label) }).toMatchObject({
        allowed: true,
      });
    }
    for (const a of answers.filter((x) => x.status === 409)) {
      expect((JSON.parse(a.body) as { type: string }).type).toContain('sold_out');
    }
    expect(answers.some((a) => a.replayed)).toBe(false);

    // Redis: exactly the accepted orders in the stream, stock at zero.
    const stream = await streamState(s, 'crowd');
    expect(stream.orderIds.sort()).toEqual(accepted.map((a) => a.orderId).sort());
    expect(await redisStock(s, 'crowd')).toBe(0);

    // The order worker persists every one of them; then the payment worker charges them.
    await waitDrained(s, 'crowd');
    const persisted = await pgOrders(s, 'crowd');
    expect(persisted).toMatchObject({ rows: STOCK, distinctIds: STOCK, duplicateKeys: 0 });
    expect(persisted.remaining).toBe(0);

    const payments = startPaymentWorker(env, ['--timeout', '1s', '--concurrency', '64']);
    await waitCharged(s, 'crowd');
    await reconcileOnce(env);
    await until('every order terminal after reconcile', async () => {
      const pg = await pgOrders(s, 'crowd');
      return (pg.byStatus.paid ?? 0) + (pg.byStatus.payment_failed ?? 0) === STOCK;
    });

    const ledger = await fetchLedger(gateway.url);
    const charges = successfulCharges(ledger);
    const final = await pgOrders(s, 'crowd');
    expect([...charges.values()].every((n) => n === 1)).toBe(true);
    expect(charges.size).toBe(final.byStatus.paid);
    expectAuditOk(await audit(s, gateway.url));

    for (const proc of [payments.proc, orders.proc, api.proc, gateway.proc]) {
      expect(await stopProcess(proc)).toEqual({ code: 0, signal: null });
    }
    expect((await streamState(s, 'crowd')).pending).toBe(0);
  });
});
