// Scenario 14 — idempotency records lost mid-sale. A buyer's retry must get the answer of the
// order its key already holds, whatever happened to the Redis record in between. A buy's order
// id is keyed from (product, user, qty, key), so the retry names the same order
// (src/domain/order-id.ts):
//
// Part 1: only the records are gone (a Redis restored without them, keys deleted by hand),
// while the orders are in PostgreSQL and in the owner index. The buy script finds the retry's
// own order id in the owner index and replays the first answer, byte for byte, also with
// perUserLimit 1 (no limit_reached) and on the sold-out fast path (no sold_out).
//
// Part 2: Redis rolled back every write of the buys (an AOF everysec crash, an asynchronous
// failover: stock, per-user count, stream entry, owner entry and record go together) after the
// order worker had persisted them. Each retry reserves again under its first order id; the
// worker finds that id in PostgreSQL and takes it as a redelivery: no second order, no
// release, and Redis stock equals PostgreSQL's again.
//
// Part 3: orders accepted before keyed ids (random UUIDv7 ids), records lost: a retry names
// another id and is accepted again. The order worker finds the key held by the first order and
// supersedes the new one: its unit is released, the key's record is restored to the first
// order's answer, and GET /order/<new id> answers with the first order.
//
// Part 4: the sale's Redis data is lost altogether. `fsale reconcile --rebuild-redis` (API
// stopped) restores the records of every accepted order from PostgreSQL with the rest of the
// sale state: every retry is a replay of its first answer, and nothing is reserved twice.
import { beforeAll, describe, expect, it } from 'vitest';
import { newOrderId } from '../../src/domain/order-id.js';
import { idempotencyKey, productKeys } from '../../src/redis/keys.js';
import { appendOrders } from '../helpers/order-stream.js';
import { runCli } from '../helpers/cli.js';
import { send, type HttpResponse } from '../helpers/http.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { startApiProcess, stopProcess, type ApiProcess } from '../helpers/stack.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { pgOrders, rollBackBuy, waitDrained } from '../helpers/sale-state.js';
import { until } from '../helpers/wait.js';

const PRODUCT = 'idem14';
const BUYERS = 60;
const STOCK = 500;
/** Part 1's second product: one unit per user, sold out by the end. */
const LIMITED = 'idem14-one';
const LIMITED_STOCK = 40;

interface Purchase {
  user: string;
  token: string;
  key: string;
  orderId: string;
}

const orderIdOf = (r: HttpResponse) => (JSON.parse(r.body) as { orderId: string }).orderId;

function buyWith(
  url: string,
  token: string,
  key: string,
  productId = PRODUCT,
): Promise<HttpResponse> {
  return send(url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${token}`, 'idempotency-key': key },
    body: { productId, qty: 1 },
  });
}

/** Each purchase's first answer, replayed: 202, Idempotent-Replayed, its first order id. */
function expectReplays(answers: HttpResponse[], purchases: Purchase[]): void {
  for (const [i, r] of answers.entries()) {
    expect(r.status, r.body).toBe(202);
    expect(r.headers['idempotent-replayed']).toBe('true');
    expect(orderIdOf(r)).toBe(purchases[i]?.orderId);
  }
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
  async function retryAll(
    url: string,
    purchases: Purchase[],
    productId = PRODUCT,
  ): Promise<HttpResponse[]> {
    return Promise.all(purchases.map((p) => buyWith(url, p.token, p.key, productId)));
  }

  /** `count` users `<prefix><i>` buy one unit each with key `<prefix>-key-<i>`: all accepted. */
  async function buyAll(
    url: string,
    prefix: string,
    count: number,
    productId = PRODUCT,
  ): Promise<Purchase[]> {
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const user = `${prefix}${i}`;
        const token = tokenFor(user);
        const key = `${prefix}-key-${i}`;
        const r = await buyWith(url, token, key, productId);
        expect(r.status, r.body).toBe(202);
        return { user, token, key, orderId: orderIdOf(r) };
      }),
    );
  }

  async function dropRecords(productId: string, purchases: Purchase[]): Promise<void> {
    const keys = productKeys(s.keyPrefix, productId);
    for (const p of purchases) {
      expect(await s.redis.del(idempotencyKey(keys, p.user, p.key))).toBe(1);
    }
  }

  /** Redis stock of the product equals PostgreSQL's remaining (nothing in flight). */
  async function expectStockAgrees(productId: string, remaining: number): Promise<void> {
    expect((await pgOrders(s, productId)).remaining).toBe(remaining);
    expect(Number(await s.redis.get(productKeys(s.keyPrefix, productId).stock))).toBe(remaining);
  }

  it('retries get the first order: replayed from the owner index, re-reserved after a rollback, superseded for old ids, rebuilt', async () => {
    await seed(s, { productId: PRODUCT, stock: STOCK, perUserLimit: 2 });
    await seed(s, { productId: LIMITED, stock: LIMITED_STOCK, perUserLimit: 1 });
    const keys = productKeys(s.keyPrefix, PRODUCT);
    api = await startApi();
    const url = api.url;

    const purchases = await buyAll(url, 'b', BUYERS);
    const limited = await buyAll(url, 'one', LIMITED_STOCK / 2, LIMITED);
    await waitDrained(s, PRODUCT);
    await waitDrained(s, LIMITED);

    // Part 1: the records vanish, the orders stay. Every retry replays its first answer.
    await dropRecords(PRODUCT, purchases);
    await dropRecords(LIMITED, limited);
    expectReplays(await retryAll(url, purchases), purchases);
    // perUserLimit 1: without the replay, each retry would be limit_reached.
    expectReplays(await retryAll(url, limited, LIMITED), limited);
    // The rest of the limited stock sells out; its records vanish too: the sold-out fast
    // path replays from the owner index (without it, each retry would be sold_out).
    const late = await buyAll(url, 'late', LIMITED_STOCK / 2, LIMITED);
    await waitDrained(s, LIMITED);
    await dropRecords(LIMITED, [...limited, ...late]);
    expectReplays(await retryAll(url, [...limited, ...late], LIMITED), [...limited, ...late]);
    // Nothing was reserved or accepted again.
    await waitDrained(s, PRODUCT);
    expect(await pgOrders(s, PRODUCT)).toMatchObject({ rows: BUYERS, duplicateKeys: 0 });
    expect(await pgOrders(s, LIMITED)).toMatchObject({ rows: LIMITED_STOCK, duplicateKeys: 0 });
    await expectStockAgrees(PRODUCT, STOCK - BUYERS);
    await expectStockAgrees(LIMITED, 0);
    expect(await s.redis.hlen(keys.superseded)).toBe(0);

    // Part 2: Redis rolls back whole buys after the worker persisted them.
    const rolledBack = await buyAll(url, 'rb', 20);
    await waitDrained(s, PRODUCT);
    for (const p of rolledBack) {
      await rollBackBuy(s, {
        productId: PRODUCT,
        orderId: p.orderId,
        userId: p.user,
        idempotencyKey: p.key,
        qty: 1,
      });
    }
    // Redis is now 20 units above PostgreSQL, until the buyers retry.
    expect(Number(await s.redis.get(keys.stock))).toBe(STOCK - BUYERS);
    for (const [i, r] of (await retryAll(url, rolledBack)).entries()) {
      expect(r.status, r.body).toBe(202);
      expect(orderIdOf(r)).toBe(rolledBack[i]?.orderId);
    }
    await waitDrained(s, PRODUCT);
    expect(await pgOrders(s, PRODUCT)).toMatchObject({ rows: BUYERS + 20, duplicateKeys: 0 });
    await expectStockAgrees(PRODUCT, STOCK - BUYERS - 20);
    expect(await s.redis.hlen(keys.superseded)).toBe(0);
    expect(await s.redis.scard(keys.released)).toBe(0);
    expectReplays(await retryAll(url, rolledBack), rolledBack);
    expectAuditOk(await audit(s, undefined, PRODUCT));

    // Part 3: orders from before keyed ids (random UUIDv7), their records lost.
    const legacy: Purchase[] = Array.from({ length: 20 }, (_, i) => ({
      user: `old${i}`,
      token: tokenFor(`old${i}`),
      key: `old-key-${i}`,
      orderId: newOrderId(),
    }));
    await appendOrders(
      s,
      PRODUCT,
      legacy.map((p) => ({ id: p.orderId, user: p.user, key: p.key })),
    );
    for (const p of legacy) await s.redis.hincrby(keys.bought, p.user, 1);
    await waitDrained(s, PRODUCT);
    const retried = await retryAll(url, legacy);
    for (const r of retried) expect(r.status, r.body).toBe(202);
    const secondIds = retried.map(orderIdOf);
    expect(secondIds.filter((id, i) => id === legacy[i]?.orderId)).toEqual([]);
    await waitDrained(s, PRODUCT);
    await until(
      'every second order superseded by its key holder',
      async () => (await s.redis.hlen(keys.superseded)) === legacy.length,
      60_000,
    );
    const accepted = BUYERS + 20 + legacy.length;

    // One order per key in PostgreSQL, none dead-lettered, and the units back in Redis.
    expect(await pgOrders(s, PRODUCT)).toMatchObject({ rows: accepted, duplicateKeys: 0 });
    expect(await s.redis.xlen(keys.deadLetter)).toBe(0);
    await expectStockAgrees(PRODUCT, STOCK - accepted);
    const bought = await s.redis.hgetall(keys.bought);
    expect(new Set(Object.values(bought))).toEqual(new Set(['1']));

    // The second order id answers with the first order; the next retry is a plain replay.
    for (const [i, p] of legacy.entries()) {
      const view = await send(url, {
        path: `/order/${secondIds[i] ?? ''}`,
        headers: { authorization: `Bearer ${p.token}` },
      });
      expect(view.status, view.body).toBe(200);
      expect(JSON.parse(view.body)).toMatchObject({ orderId: p.orderId, status: 'pending' });
    }
    expectReplays(await retryAll(url, legacy), legacy);
    // The per-user limit (2) still leaves each buyer their legitimate second unit.
    const legit = await buyWith(url, purchases[0]?.token ?? '', 'second-unit');
    expect(legit.status, legit.body).toBe(202);
    await waitDrained(s, PRODUCT);
    expectAuditOk(await audit(s, undefined, PRODUCT));
    expectAuditOk(await audit(s, undefined, LIMITED));

    // Part 4: the sale's whole Redis state is lost; the API is stopped for the rebuild.
    await stopProcess(api);
    api = undefined;
    expect(await deleteKeys(`${s.keyPrefix}:{p:${PRODUCT}}:*`)).toBeGreaterThan(0);
    const rebuilt = await runCli(['reconcile', '--rebuild-redis', '--json'], s.env);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    api = await startApi();
    expectReplays(await retryAll(api.url, purchases), purchases);
    expectReplays(await retryAll(api.url, legacy), legacy);
    const replayLegit = await buyWith(api.url, purchases[0]?.token ?? '', 'second-unit');
    expect(replayLegit.headers['idempotent-replayed']).toBe('true');
    await waitDrained(s, PRODUCT);
    expect(await pgOrders(s, PRODUCT)).toMatchObject({
      rows: accepted + 1,
      duplicateKeys: 0,
      remaining: STOCK - accepted - 1,
    });
    await expectStockAgrees(PRODUCT, STOCK - accepted - 1);
    expectAuditOk(await audit(s, undefined, PRODUCT));
  });
});
