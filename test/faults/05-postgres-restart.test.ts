// Scenario 5: PostgreSQL restarted twice in the middle of a sale: once with a fast shutdown
// (`pg_ctl restart -m fast`: open transactions rolled back, connections dropped) and once with
// an immediate one (SIGQUIT: no checkpoint, crash recovery at the next start). The server is a
// private `postgres` this file starts on its own port and data directory (the machine's shared
// server is never touched). The API keeps accepting buys throughout (its hot path is Redis
// only); the order and payment workers ride the outages out by themselves, without being
// restarted; afterwards every accepted order is persisted and settled, and the audit holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { connectPostgres } from '../../src/db/pool.js';
import { isAlive } from '../helpers/process.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk, successfulCharges } from '../helpers/audit.js';
import { buyers, buyOnce, tally, type BuyAnswer } from '../helpers/crowd.js';
import {
  createDatabase,
  startPrivatePostgres,
  type PrivatePostgres,
} from '../helpers/private-postgres.js';
import { pgOrders, redisStock, waitCharged, waitDrained } from '../helpers/sale-state.js';
import {
  NO_LOAD_SHEDDING,
  reconcileOnce,
  startGateway,
  startOrderWorker,
  startPaymentWorker,
  startServe,
  stopProcess,
} from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const BUYERS = 2_400;
const STOCK = 3_000;
const OUTAGE_MS = 3_000;

let s: TestServices;
let server: PrivatePostgres;
beforeAll(async () => {
  const shared = await useTestServices();
  server = await startPrivatePostgres();
  const databaseUrl = await createDatabase(server.url, 'fsale_faults_pg_restart');
  const pool = await connectPostgres(databaseUrl, { max: 5 });
  s = {
    ...shared,
    databaseUrl,
    pool,
    env: { ...shared.env, DATABASE_URL: databaseUrl },
  };
});
afterAll(async () => {
  await s.pool.end();
  await server.destroy();
});

describe('scenario 5: PostgreSQL restart mid-sale', () => {
  it('fast and immediate restarts: API keeps accepting, workers recover by themselves, audit OK', async () => {
    await seed(s, { productId: 'restart', stock: STOCK, priceCents: 900 });
    const gateway = await startGateway(s.env, 505);
    const env = { ...s.env, FSALE_GATEWAY_URL: gateway.url };
    const api = await startServe(env, NO_LOAD_SHEDDING);
    const orders = startOrderWorker(env, ['--claim-idle', '5s', '--batch', '100']);
    const payments = startPaymentWorker(env, [
      '--timeout',
      '1s',
      '--max-retries',
      '1',
      '--max-backoff',
      '200ms',
      '--concurrency',
      '32',
    ]);

    // A steady crowd (4 lanes, a short pause between buys) that spans both outages.
    const list = buyers('pg', BUYERS);
    const answers: Array<BuyAnswer & { duringOutage: boolean }> = [];
    let down = false;
    let next = 0;
    const lane = async () => {
      while (next < list.length) {
        const buyer = list[next++];
        if (buyer === undefined) break;
        const wasDown = down;
        const answer = await buyOnce(api.url, 'restart', buyer);
        answers.push({ ...answer, duringOutage: wasDown && down });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const flood = Promise.all(Array.from({ length: 4 }, lane));

    const restarts: Array<{ mode: 'fast' | 'immediate'; answeredWhileDown: number }> = [];
    for (const [mode, after] of [
      ['fast', BUYERS * 0.25],
      ['immediate', BUYERS * 0.6],
    ] as const) {
      await until(`${after} answers before the ${mode} restart`, () => answers.length >= after);
      // Something to lose: orders persisted recently, and more waiting in the stream.
      const before = answers.length;
      await server.stop(mode);
      down = true;
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      down = false;
      await server.start();
      restarts.push({ mode, answeredWhileDown: answers.length - before });
    }
    await flood;
    console.log(
      `scenario 5: ${JSON.stringify(tally(answers))}; restarts ${JSON.stringify(restarts)}`,
    );

    // The API kept answering buys while PostgreSQL was down, and accepted them all.
    expect(answers).toHaveLength(BUYERS);
    expect(tally(answers)).toEqual({ '202': BUYERS });
    for (const r of restarts) expect(r.answeredWhileDown).toBeGreaterThan(0);
    expect(answers.filter((a) => a.duringOutage).length).toBeGreaterThan(0);

    // The workers were never restarted: same processes, and they noticed and recovered.
    await waitDrained(s, 'restart');
    await waitCharged(s, 'restart').catch(async (error: unknown) => {
      const stuck = await s.pool.query(
        `SELECT status, payment_lease_until > now() AS leased, payment_attempts, count(*)::int AS n
           FROM orders WHERE status = 'pending' GROUP BY 1, 2, 3`,
      );
      throw new Error(
        `${String(error)}; pending: ${JSON.stringify(stuck.rows)}; payment worker: ${payments.proc.output().slice(-4000)}`,
      );
    });
    for (const w of [orders, payments]) expect(isAlive(w.proc.pid)).toBe(true);
    expect(orders.proc.output()).toMatch(/PostgreSQL error/);
    expect(orders.proc.output()).toMatch(/PostgreSQL recovered/);
    await reconcileOnce(env);

    const accepted = new Set(answers.map((a) => a.orderId ?? ''));
    const pg = await pgOrders(s, 'restart');
    expect(pg).toMatchObject({ rows: BUYERS, distinctIds: BUYERS, duplicateKeys: 0 });
    expect(pg.ids).toEqual(accepted);
    expect(
      Object.keys(pg.byStatus).filter((st) => st !== 'paid' && st !== 'payment_failed'),
    ).toEqual([]);
    const failed = pg.byStatus.payment_failed ?? 0;
    expect(pg.remaining).toBe(STOCK - BUYERS + failed);
    expect(await redisStock(s, 'restart')).toBe(STOCK - BUYERS + failed);

    const ledger = (await fetchLedger(gateway.url)).filter((c) => accepted.has(c.orderId));
    const charges = successfulCharges(ledger);
    expect([...charges].filter(([, n]) => n > 1)).toEqual([]);
    expect(charges.size).toBe(pg.byStatus.paid);
    expectAuditOk(await audit(s, gateway.url));

    for (const proc of [payments.proc, orders.proc, api.proc, gateway.proc]) {
      expect(await stopProcess(proc)).toEqual({ code: 0, signal: null });
    }
  });
});
