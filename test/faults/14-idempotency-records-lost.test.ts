// Scenario 14 — idempotency records lost mid-sale. A buyer's retry must get the answer of the
// order its key already holds, whatever happened to the Redis record in between:
//
// Part 1: only the records are gone (they expired under an older version's 24 h TTL, or a
// Redis that lost its last second came back without them), while the orders are in
// PostgreSQL. The API cannot know: each retry is accepted again under a new order id. The
// order worker finds the key held by the first order and supersedes the new one: its unit is
// released, the key's record is restored to the first order's answer, and GET /order/<new id>
// answers with the first order. Stock, per-user counts and the audit come out as if the
// retries had been replays.
//
// Part 2: the sale's Redis data is lost altogether. `fsale reconcile --rebuild-redis` (API
// stopped) restores the records of every accepted order from PostgreSQL with the rest of the
// sale state: every retry is a replay of its first answer, and nothing is reserved twice.
import { beforeAll, describe, expect, it } from 'vitest';
import { idempotencyKey, productKeys } from '../../src/redis/keys.js';
import { runCli } from '../helpers/cli.js';
import { send, type HttpResponse } from '../helpers/http.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { startApiProcess, stopProcess, type ApiProcess } from '../helpers/stack.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { pgOrders, waitDrained } from '../helpers/sale-state.js';
import { until } from '../helpers/wait.js';

const PRODUCT = 'idem14';
const BUYERS = 60;
const STOCK = 500;

interface Purchase {
  user: string;
  token: string;
  key: string;
  orderId: string;
}

const orderIdOf = (r: HttpResponse) => (JSON.parse(r.body) as { orderId: string }).orderId;

function buyWith(url: string, token: string, key: string): Promise<HttpResponse> {
  return send(url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${token}`, 'idempotency-key': key },
    body: { productId: PRODUCT, qty: 1 },
  });
}

describe('scenario 14: idempotency records lost mid-sale', () => {
  let s: TestServices;
  let api: ApiProcess | undefined;
  let orders: CliProcess;
  const startApi = () =>
    startApiProcess(s.env, ['--rate-limit', '0', '--max-event-loop-delay', '10m']);
  beforeAll(async () => {
    s = await useTestServices();
    orders = startCli(['work', 'orders', '--block', '100ms'], s.env);
    return async () => {
      if (api !== undefined) await stopProcess(api);
      await stopProcess(orders);
    };
  });

  async function deleteKeys(pattern: string): Promise<number> {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, found] = await s.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (found.length > 0) deleted += await s.redis.del(...found);
    } while (cursor !== '0');
    return deleted;
  }

  /** Every purchase retried with its own key: the answers, in order. */
  async function retryAll(url: string, purchases: Purchase[]): Promise<HttpResponse[]> {
    return Promise.all(purchases.map((p) => buyWith(url, p.token, p.key)));
  }

  it('retries get the first order, through the worker and through --rebuild-redis', async () => {
    await seed(s, { productId: PRODUCT, stock: STOCK, perUserLimit: 2 });
    const keys = productKeys(s.keyPrefix, PRODUCT);
    api = await startApi();
    const url = api.url;

    const purchases: Purchase[] = await Promise.all(
      Array.from({ length: BUYERS }, async (_, i) => {
        const user = `b${i}`;
        const token = tokenFor(user);
        const key = `first-${i}`;
        const r = await buyWith(url, token, key);
        expect(r.status, r.body).toBe(202);
        return { user, token, key, orderId: orderIdOf(r) };
      }),
    );
    await waitDrained(s, PRODUCT);

    // Part 1: the records vanish, the orders stay.
    for (const p of purchases) await s.redis.del(idempotencyKey(keys, p.user, p.key));
    const retried = await retryAll(url, purchases);
    for (const r of retried) expect(r.status, r.body).toBe(202);
    const secondIds = retried.map(orderIdOf);
    await waitDrained(s, PRODUCT);
    await until(
      'every second order superseded by its key holder',
      async () => (await s.redis.hlen(keys.superseded)) === BUYERS,
      60_000,
    );

    // One order per key in PostgreSQL, none dead-lettered, and the units back in Redis.
    expect(await pgOrders(s, PRODUCT)).toMatchObject({
      rows: BUYERS,
      duplicateKeys: 0,
      remaining: STOCK - BUYERS,
    });
    expect(await s.redis.xlen(keys.deadLetter)).toBe(0);
    expect(Number(await s.redis.get(keys.stock))).toBe(STOCK - BUYERS);
    const bought = await s.redis.hgetall(keys.bought);
    expect(new Set(Object.values(bought))).toEqual(new Set(['1']));

    // The second order id answers with the first order; the next retry is a plain replay.
    for (const [i, p] of purchases.entries()) {
      const view = await send(url, {
        path: `/order/${secondIds[i] ?? ''}`,
        headers: { authorization: `Bearer ${p.token}` },
      });
      expect(view.status, view.body).toBe(200);
      expect(JSON.parse(view.body)).toMatchObject({ orderId: p.orderId, status: 'pending' });
    }
    for (const [i, r] of (await retryAll(url, purchases)).entries()) {
      expect(r.status).toBe(202);
      expect(r.headers['idempotent-replayed']).toBe('true');
      expect(orderIdOf(r)).toBe(purchases[i]?.orderId);
    }
    // The per-user limit (2) still leaves each buyer their legitimate second unit.
    const legit = await buyWith(url, purchases[0]?.token ?? '', 'second-unit');
    expect(legit.status, legit.body).toBe(202);
    await waitDrained(s, PRODUCT);
    expectAuditOk(await audit(s, undefined, PRODUCT));

    // Part 2: the sale's whole Redis state is lost; the API is stopped for the rebuild.
    await stopProcess(api);
    api = undefined;
    expect(await deleteKeys(`${s.keyPrefix}:{p:${PRODUCT}}:*`)).toBeGreaterThan(0);
    const rebuilt = await runCli(['reconcile', '--rebuild-redis', '--json'], s.env);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    api = await startApi();
    for (const [i, r] of (await retryAll(api.url, purchases)).entries()) {
      expect(r.status, r.body).toBe(202);
      expect(r.headers['idempotent-replayed']).toBe('true');
      expect(orderIdOf(r)).toBe(purchases[i]?.orderId);
    }
    const replayLegit = await buyWith(api.url, purchases[0]?.token ?? '', 'second-unit');
    expect(replayLegit.headers['idempotent-replayed']).toBe('true');
    await waitDrained(s, PRODUCT);
    expect(await pgOrders(s, PRODUCT)).toMatchObject({
      rows: BUYERS + 1,
      duplicateKeys: 0,
      remaining: STOCK - BUYERS - 1,
    });
    expect(Number(await s.redis.get(keys.stock))).toBe(STOCK - BUYERS - 1);
    expectAuditOk(await audit(s, undefined, PRODUCT));
  });
});
