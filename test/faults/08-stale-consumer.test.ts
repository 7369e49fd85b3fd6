// Scenario 8: a stale consumer. A worker is frozen (SIGSTOP, like a long GC pause or a VM
// stall) while it holds work; past the claim time another worker takes that work over and
// finishes it; then the first one is resumed (SIGCONT) and finishes its old work late. Its
// late writes must change nothing: the order insert conflicts (ON CONFLICT DO NOTHING takes
// no stock twice) and every status change is guarded (UPDATE ... WHERE status = <expected>).
//
// The order worker is frozen with its PostgreSQL link held back by a small proxy, so that it
// holds delivered entries without an open transaction (a transaction left open by a frozen
// process would block the rescuer on the row locks until the freeze ends).
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { ORDER_GROUP, productKeys } from '../../src/redis/keys.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk, successfulCharges } from '../helpers/audit.js';
import { buyers, crowd, tally } from '../helpers/crowd.js';
import { pgOrders, streamState, waitCharged, waitDrained } from '../helpers/sale-state.js';
import {
  NO_LOAD_SHEDDING,
  reconcileUntilTerminal,
  startGateway,
  startOrderWorker,
  startPaymentWorker,
  startServe,
  stopProcess,
  waitStarted,
  type Service,
  type Worker,
} from '../helpers/stack.js';
import { startFreezingProxy } from '../helpers/freezing-proxy.js';
import { until } from '../helpers/wait.js';

let s: TestServices;
let api: Service;
let gateway: Service;
let env: Record<string, string>;
beforeAll(async () => {
  s = await useTestServices();
  gateway = await startGateway(s.env, 808, 1);
  env = { ...s.env, FSALE_GATEWAY_URL: gateway.url };
  api = await startServe(env, NO_LOAD_SHEDDING);
  return async () => {
    await stopProcess(api.proc);
    await stopProcess(gateway.proc);
  };
});

/** Entries of the product's stream pending for `consumer`. */
async function heldBy(productId: string, consumer: string): Promise<string[]> {
  const reply = (await s.redis.xpending(
    productKeys(s.keyPrefix, productId).orders,
    ORDER_GROUP,
    '-',
    '+',
    10_000,
    consumer,
  )) as Array<[string, string, number, number]>;
  return reply.map(([id]) => id);
}

const num = (w: Worker, field: string) => Number(w.last()?.[field] ?? NaN);

describe('scenario 8: stale consumer', () => {
  it('an order worker frozen with entries in hand, claimed by another, then resumed: its late writes change nothing', async () => {
    await seed(s, { productId: 'stale', stock: 1000 });
    const proxy = await startFreezingProxy(Number(new URL(s.databaseUrl).port || 5432));
    const stale = startOrderWorker({ ...env, DATABASE_URL: proxy.through(s.databaseUrl) }, [
      '--consumer',
      'stale',
      '--batch',
      '40',
      '--block',
      '20ms',
      '--claim-idle',
      '10m', // it never claims; it is the one claimed from
    ]);
    await waitStarted(stale, 'the stale worker');

    // Frozen while idle; the orders arrive; its PostgreSQL link stalls; it wakes up, reads
    // batches and cannot persist them: it now holds delivered, unacknowledged entries.
    stale.proc.child.kill('SIGSTOP');
    const answers = await crowd(() => api.url, 'stale', buyers('st', 200), 16);
    expect(tally(answers)).toEqual({ '202': 200 });
    proxy.freeze();
    stale.proc.child.kill('SIGCONT');
    await until(
      'the stale worker to hold entries',
      async () => (await heldBy('stale', 'stale')).length >= 1,
      60_000,
    ).catch(async (error: unknown) => {
      const group = await streamState(s, 'stale');
      throw new Error(
        `${String(error)}; stream ${JSON.stringify({ ...group, orderIds: group.orderIds.length })}; stale worker: ${stale.proc.output().slice(-2000)}`,
      );
    });
    // Let it read what it can (up to two batches in flight) before freezing it for good.
    await new Promise((resolve) => setTimeout(resolve, 500));
    stale.proc.child.kill('SIGSTOP');
    const held = await heldBy('stale', 'stale');
    const before = num(stale, 'persisted');

    // Past the claim time, a rescuer takes the entries over and persists everything.
    const rescuer = startOrderWorker(env, [
      '--consumer',
      'rescuer',
      '--claim-idle',
      '1s',
      '--block',
      '100ms',
    ]);
    await waitDrained(s, 'stale');
    expect(await heldBy('stale', 'stale')).toEqual([]);
    const settled = await pgOrders(s, 'stale');
    expect(settled).toMatchObject({ rows: 200, distinctIds: 200, remaining: 800 });
    const rows = await s.pool.query<{ id: string; persisted_at: Date; updated_at: Date }>(
      "SELECT id::text AS id, persisted_at, updated_at FROM orders WHERE product_id = 'stale' ORDER BY id",
    );

    // The stale worker wakes up and finishes its old batches: all duplicates.
    proxy.thaw();
    stale.proc.child.kill('SIGCONT');
    await until(
      'the stale worker to finish its old batches',
      () => num(stale, 'duplicates') >= held.length,
      60_000,
    );
    expect(await stopProcess(stale.proc)).toEqual({ code: 0, signal: null });
    expect(await stopProcess(rescuer.proc)).toEqual({ code: 0, signal: null });
    await proxy.close();
    const last = stale.last('stopped');
    console.log(
      `scenario 8: the stale worker held ${held.length}; its final line ${JSON.stringify(last)}`,
    );
    expect(last).toMatchObject({ persisted: before, duplicates: held.length, deadLettered: 0 });
    expect(before).toBe(0);
    expect(held.length).toBeGreaterThanOrEqual(1);

    // Nothing changed: same rows, same times, stock taken once, stream fully acknowledged.
    expect(await pgOrders(s, 'stale')).toMatchObject({
      rows: 200,
      distinctIds: 200,
      duplicateKeys: 0,
      remaining: 800,
    });
    const after = await s.pool.query<{ id: string; persisted_at: Date; updated_at: Date }>(
      "SELECT id::text AS id, persisted_at, updated_at FROM orders WHERE product_id = 'stale' ORDER BY id",
    );
    expect(after.rows).toEqual(rows.rows);
    expect(await streamState(s, 'stale')).toMatchObject({ pending: 0, lag: 0, deadLetters: 0 });
    expectAuditOk(await audit(s, undefined, 'stale'));
  });

  it('a payment worker frozen with charges in flight, taken over after its lease, then resumed: it cannot overwrite the newer status', async () => {
    await seed(s, { productId: 'stalepay', stock: 60, priceCents: 4200 });
    const orders = startOrderWorker(env);
    const answers = await crowd(() => api.url, 'stalepay', buyers('sp', 60), 16);
    expect(tally(answers)).toEqual({ '202': 60 });
    await waitDrained(s, 'stalepay');

    // Lease = (timeout + max backoff) x (retries + 1) + timeout = 4.1 s.
    const args = ['--timeout', '2s', '--max-retries', '0', '--max-backoff', '100ms'];
    const frozen = startPaymentWorker(env, [...args, '--concurrency', '20']);
    const leased = async () =>
      (
        await s.pool.query<{ id: string }>(
          `SELECT id::text AS id FROM orders WHERE product_id = 'stalepay' AND status = 'pending'
             AND payment_lease_until > now()`,
        )
      ).rows.map((r) => r.id);
    await until('charges in flight', async () => (await leased()).length >= 10, 60_000, 20);
    frozen.proc.child.kill('SIGSTOP');
    const inFlight = await leased();

    // Its leases run out; a second worker charges those orders (same idempotency key) and
    // everything else.
    await until('the frozen leases to run out', async () => (await leased()).length === 0, 60_000);
    const fresh = startPaymentWorker(env, [...args, '--concurrency', '64']);
    await waitCharged(s, 'stalepay', 90_000).catch(async (error: unknown) => {
      const stuck = await s.pool.query(
        `SELECT id, status, payment_lease_until, payment_attempts, now() AS now FROM orders
          WHERE product_id = 'stalepay' AND status = 'pending'`,
      );
      const sessions = await s.pool.query(
        `SELECT application_name, state, left(query, 120) AS query, now() - xact_start AS xact_age
           FROM pg_stat_activity WHERE datname = current_database()`,
      );
      throw new Error(
        `${String(error)}; pending ${JSON.stringify(stuck.rows)}; sessions ${JSON.stringify(sessions.rows)}; fresh worker ${fresh.proc.output().slice(-1500)}`,
      );
    });
    await reconcileUntilTerminal(s, env, 'stalepay'); // the charges that hung: needs_reconciliation
    const snapshot = await s.pool.query<{ id: string; status: string; updated_at: Date }>(
      "SELECT id::text AS id, status, updated_at FROM orders WHERE product_id = 'stalepay' ORDER BY id",
    );
    expect(snapshot.rows.every((r) => r.status === 'paid' || r.status === 'payment_failed')).toBe(
      true,
    );
    const paymentsBefore = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM payments WHERE outcome IN ('paid', 'declined', 'unknown')",
    );

    // Resumed: its old charges answer or time out, and every status change it tries is refused.
    const linesBefore = frozen.lines.length;
    frozen.proc.child.kill('SIGCONT');
    await until(
      'the resumed worker to finish its stale charges',
      () => frozen.lines.slice(linesBefore).some((l) => l.event === 'status' && l.inFlight === 0),
      60_000,
    );
    expect(await stopProcess(frozen.proc)).toEqual({ code: 0, signal: null });
    const final = frozen.last('stopped') ?? frozen.last();
    console.log(
      `scenario 8: ${inFlight.length} charges in flight when frozen; after resuming: ${JSON.stringify(final)}`,
    );
    expect(Number(final?.stale)).toBeGreaterThanOrEqual(1);

    const after = await s.pool.query<{ id: string; status: string; updated_at: Date }>(
      "SELECT id::text AS id, status, updated_at FROM orders WHERE product_id = 'stalepay' ORDER BY id",
    );
    expect(after.rows).toEqual(snapshot.rows);
    const paymentsAfter = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM payments WHERE outcome IN ('paid', 'declined', 'unknown')",
    );
    expect(paymentsAfter.rows).toEqual(paymentsBefore.rows);

    const ledger = await fetchLedger(gateway.url);
    const charges = successfulCharges(ledger);
    const ids = new Set(after.rows.map((r) => r.id));
    expect([...charges].filter(([id, n]) => ids.has(id) && n > 1)).toEqual([]);
    expect([...charges.keys()].filter((id) => ids.has(id)).sort()).toEqual(
      after.rows.filter((r) => r.status === 'paid').map((r) => r.id),
    );
    expect(await stopProcess(fresh.proc)).toEqual({ code: 0, signal: null });
    expect(await stopProcess(orders.proc)).toEqual({ code: 0, signal: null });
    expectAuditOk(await audit(s, gateway.url, 'stalepay'));
  });
});
