import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { keyedOrderIds } from '../../src/domain/order-id.js';
import { scanKeys } from '../../src/redis/client.js';
import { idempotencyKey, productKeys } from '../../src/redis/keys.js';
import { BUY_MODES } from '../../src/sale/buy.js';
import { settleFailed } from '../../src/sale/settle.js';
import { send } from '../helpers/http.js';
import { until } from '../helpers/wait.js';
import {
  buy,
  freshKey,
  saleState,
  seed,
  startApi,
  tokenFor,
  type RunningApi,
} from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import {
  ACCEPTED_ORDER_STATUS,
  ACCEPTED_STATUS,
  fullState,
  persistedOrders,
  pgState,
} from '../helpers/buy-modes.js';

const problemType = (body: string) => (JSON.parse(body) as { type: string }).type;

// The whole buy-path suite runs against both modes: queue (Redis reserves, 202, the order
// worker persists later) and sync (one PostgreSQL transaction, 201, persisted at once).
describe.each(BUY_MODES)('POST /order/buy in %s mode', (mode) => {
  const ACCEPTED = ACCEPTED_STATUS[mode];
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { mode });
  });

  /** The product's Redis keys and the bytes they take (MEMORY USAGE), for memory bounds. */
  async function productFootprint(productId: string): Promise<{ keys: number; bytes: number }> {
    const found = await scanKeys(s.redis, `${s.keyPrefix}:{p:${productId}}:*`);
    let bytes = 0;
    for (const key of found) {
      bytes += Number(await s.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    }
    const keys = found.length;
    return { keys, bytes };
  }

  /** Rows in every table of this file's database (migrations excluded: they do not move). */
  async function databaseRows(): Promise<Record<string, number>> {
    const { rows: tables } = await s.pool.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
    );
    const counts: Record<string, number> = {};
    for (const { name } of tables) {
      const { rows } = await s.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${name}"`,
      );
      counts[name] = rows[0]?.n ?? -1;
    }
    return counts;
  }

  /** The accepted orders as the mode records them: the Redis stream, or PostgreSQL. */
  async function acceptedOrders(productId: string): Promise<{ id: string; user: string }[]> {
    const keys = productKeys(s.keyPrefix, productId);
    if (mode === 'sync') {
      // Nothing goes through the order stream in sync mode.
      expect(await s.redis.xlen(keys.orders)).toBe(0);
      const rows = await persistedOrders(s, productId);
      expect(new Set(rows.map((r) => r.status))).toEqual(
        new Set(rows.length > 0 ? ['pending'] : []),
      );
      return rows.map((r) => ({ id: r.id, user: r.user_id }));
    }
    const field = (fields: string[], name: string) => fields[fields.indexOf(name) + 1] ?? '';
    return (await s.redis.xrange(keys.orders, '-', '+')).map(([, fields]) => ({
      id: field(fields, 'id'),
      user: field(fields, 'user'),
    }));
  }

  it('10,000 concurrent buys by distinct users for 1,000 units: exactly 1,000 accepted, 9,000 sold out', async () => {
    await seed(s, { productId: 'flash', stock: 1000 });
    const users = Array.from({ length: 10_000 }, (_, i) => `buyer${i}`);
    const tokens = mintTokens(TEST_JWT_SECRET, users, 600);
    const responses = await Promise.all(
      tokens.map((token) => buy(api, { token, productId: 'flash', key: freshKey() })),
    );
    const byStatus = new Map<number, number>();
    for (const r of responses) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    expect(Object.fromEntries(byStatus)).toEqual({ [ACCEPTED]: 1000, 409: 9000 });
    for (const r of responses.filter((r) => r.status === 409)) {
      expect(problemType(r.body)).toBe('urn:fsale:problem:sold_out');
    }

    const keys = productKeys(s.keyPrefix, 'flash');
    expect(await s.redis.get(keys.stock)).toBe('0');
    const orders = await acceptedOrders('flash');
    expect(orders).toHaveLength(1000);
    const orderIds = orders.map((o) => o.id);
    expect(new Set(orderIds).size).toBe(1000);
    expect(new Set(orders.map((o) => o.user)).size).toBe(1000);
    // The PG stock guard: sync mode took the units there at once, queue mode not yet.
    expect((await pgState(s, 'flash'))?.remaining).toBe(mode === 'sync' ? 0 : 1000);
    const accepted = responses
      .filter((r) => r.status === ACCEPTED)
      .map((r) => (JSON.parse(r.body) as { orderId: string }).orderId);
    expect(new Set(accepted)).toEqual(new Set(orderIds));
  });

  it('the same Idempotency-Key sent 50 times at once makes one order; the others are replays', async () => {
    await seed(s, { productId: 'dup', stock: 10 });
    const token = tokenFor('clicker');
    const key = freshKey();
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => buy(api, { token, productId: 'dup', key })),
    );
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([ACCEPTED]));
    expect(new Set(responses.map((r) => r.body)).size).toBe(1);
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(49);
    expect(await saleState(s, 'dup')).toMatchObject({
      stock: '9',
      streamLength: mode === 'queue' ? 1 : 0,
      bought: { clicker: '1' },
    });
    expect(await acceptedOrders('dup')).toHaveLength(1);
  });

  describe('idempotency table', () => {
    beforeAll(() => seed(s, { productId: 'idem', stock: 100, perUserLimit: 5 }));

    it('a missing Idempotency-Key is a 400 and changes nothing', async () => {
      const before = await fullState(s, 'idem');
      const r = await buy(api, { token: tokenFor('u1'), productId: 'idem', key: undefined });
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(problemType(r.body)).toBe('urn:fsale:problem:idempotency_key_missing');
      expect(await fullState(s, 'idem')).toEqual(before);
    });

    it.each([['x'.repeat(256)], ['tab\there'], ['ünïcode']])(
      'an unusable key %j is a 400',
      async (key) => {
        const r = await send(api.url, {
          method: 'POST',
          path: '/order/buy',
          headers: { authorization: `Bearer ${tokenFor('u1')}`, 'idempotency-key': key },
          body: { productId: 'idem', qty: 1 },
        }).catch(() => ({
          status: 400,
          body: '{"type":"urn:fsale:problem:idempotency_key_invalid"}',
        }));
        // Node's client refuses to send some header bytes at all; either way nothing is reserved.
        expect(r.status).toBe(400);
      },
    );

    it('the same key with a different payload is a 422 and reserves nothing more', async () => {
      const token = tokenFor('u2');
      const key = freshKey();
      expect((await buy(api, { token, productId: 'idem', key, qty: 1 })).status).toBe(ACCEPTED);
      const before = await fullState(s, 'idem');
      const r = await buy(api, { token, productId: 'idem', key, qty: 2 });
      expect(r.status).toBe(422);
      expect(problemType(r.body)).toBe('urn:fsale:problem:idempotency_key_reused');
      expect(await fullState(s, 'idem')).toEqual(before);
    });

    it('a completed request is replayed byte for byte with Idempotent-Replayed: true', async () => {
      const token = tokenFor('u3');
      const key = freshKey();
      const first = await buy(api, { token, productId: 'idem', key });
      const again = await buy(api, { token, productId: 'idem', key });
      expect(first.status).toBe(ACCEPTED);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(again.status).toBe(ACCEPTED);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body).toBe(first.body);
      expect(again.headers['location']).toBe(first.headers['location']);
    });

    it('the order id is the keyed id of (product, user, qty, key), in both modes', async () => {
      const key = freshKey();
      const first = await buy(api, { token: tokenFor('u6'), productId: 'idem', key });
      expect(first.status).toBe(ACCEPTED);
      const named = { productId: 'idem', userId: 'u6', qty: 1, idempotencyKey: key };
      expect(JSON.parse(first.body)).toMatchObject({
        orderId: keyedOrderIds(TEST_JWT_SECRET)(named),
      });
    });

    it('a rejection is not recorded: a retry with the same key is decided again', async () => {
      await seed(s, { productId: 'lim', stock: 10, perUserLimit: 1 });
      const token = tokenFor('u4');
      expect((await buy(api, { token, productId: 'lim', key: freshKey() })).status).toBe(ACCEPTED);
      const key = freshKey();
      const first = await buy(api, { token, productId: 'lim', key });
      const again = await buy(api, { token, productId: 'lim', key });
      expect(first.status).toBe(409);
      expect(problemType(first.body)).toBe('urn:fsale:problem:limit_reached');
      expect(again.status).toBe(409);
      expect(problemType(again.body)).toBe('urn:fsale:problem:limit_reached');
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      // Nothing was written for the key: the same key with another quantity is no mismatch.
      expect(await s.redis.exists(idempotencyKey(productKeys(s.keyPrefix, 'lim'), 'u4', key))).toBe(
        0,
      );
      const other = await buy(api, { token, productId: 'lim', key, qty: 2 });
      expect(problemType(other.body)).toBe('urn:fsale:problem:limit_reached');
    });

    it('keys are scoped per user: two users with the same key get two orders', async () => {
      const key = freshKey();
      const a = await buy(api, { token: tokenFor('ua'), productId: 'idem', key });
      const b = await buy(api, { token: tokenFor('ub'), productId: 'idem', key });
      expect([a.status, b.status]).toEqual([ACCEPTED, ACCEPTED]);
      expect(a.body).not.toBe(b.body);
      expect(b.headers['idempotent-replayed']).toBeUndefined();
    });

    it("an accepted buy's record never expires while the sale's data lives", async () => {
      const key = freshKey();
      const first = await buy(api, { token: tokenFor('u5'), productId: 'idem', key });
      expect(first.status).toBe(ACCEPTED);
      if (mode === 'queue') {
        // No TTL: the record goes only with the product's keys (`seed --reset`).
        const record = idempotencyKey(productKeys(s.keyPrefix, 'idem'), 'u5', key);
        expect(await s.redis.ttl(record)).toBe(-1);
      } else {
        // Sync mode: the order row is the record.
        const { rows } = await s.pool.query<{ id: string }>(
          `SELECT id::text AS id FROM orders
            WHERE product_id = 'idem' AND user_id = 'u5' AND idempotency_key = $1`,
          [key],
        );
        expect(rows.map((r) => r.id)).toEqual([
          (JSON.parse(first.body) as { orderId: string }).orderId,
        ]);
      }
    });
  });

  // Queue mode only: sync mode's record is the order row itself, which cannot be lost
  // without the order.
  describe.runIf(mode === 'queue')('a lost idempotency record (Redis came back without it)', () => {
    const dropRecord = (productId: string, user: string, key: string) =>
      s.redis.del(idempotencyKey(productKeys(s.keyPrefix, productId), user, key));

    it('with perUserLimit 1, the retry gets the first 202 byte for byte, not limit_reached', async () => {
      await seed(s, { productId: 'lost1', stock: 10, perUserLimit: 1 });
      const token = tokenFor('l1');
      const key = freshKey();
      const first = await buy(api, { token, productId: 'lost1', key });
      expect(first.status).toBe(ACCEPTED);
      expect(await dropRecord('lost1', 'l1', key)).toBe(1);
      const retry = await buy(api, { token, productId: 'lost1', key });
      expect(retry.status, retry.body).toBe(ACCEPTED);
      expect(retry.body).toBe(first.body);
      expect(retry.headers['location']).toBe(first.headers['location']);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      // Nothing reserved again, and the record is back: the next retry is a plain replay.
      expect(await saleState(s, 'lost1')).toMatchObject({
        stock: '9',
        streamLength: 1,
        bought: { l1: '1' },
        owners: 1,
        idempotencyRecords: 1,
      });
      // The record written again is the first request's: the key with another quantity is 422.
      const other = await buy(api, { token, productId: 'lost1', key, qty: 2 });
      expect(problemType(other.body)).toBe('urn:fsale:problem:idempotency_key_reused');
    });

    it('with units left and no limit in the way, the retry replays instead of reserving a second unit', async () => {
      await seed(s, { productId: 'lost2', stock: 10, perUserLimit: 5 });
      const token = tokenFor('l2');
      const key = freshKey();
      const first = await buy(api, { token, productId: 'lost2', key });
      await dropRecord('lost2', 'l2', key);
      const retry = await buy(api, { token, productId: 'lost2', key });
      expect(retry.status).toBe(ACCEPTED);
      expect(retry.body).toBe(first.body);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(await saleState(s, 'lost2')).toMatchObject({ stock: '9', streamLength: 1 });
    });

    it('after sell-out, the sold-out fast path replays the 202 from the owner index', async () => {
      await seed(s, { productId: 'lostlast', stock: 1 });
      const token = tokenFor('l3');
      const key = freshKey();
      const first = await buy(api, { token, productId: 'lostlast', key });
      expect(first.status).toBe(ACCEPTED);
      // Once this process hears the product (it was seeded just now).
      await until('the fast path to engage', () => api.app.api.soldOut.isSoldOut('lostlast'));
      await dropRecord('lostlast', 'l3', key);
      const before = await fullState(s, 'lostlast');
      const retry = await buy(api, { token, productId: 'lostlast', key });
      expect(retry.status, retry.body).toBe(ACCEPTED);
      expect(retry.body).toBe(first.body);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      // Another user with the same key, or the same key with another quantity: sold out.
      for (const other of [
        { token: tokenFor('l4'), productId: 'lostlast', key },
        { token, productId: 'lostlast', key, qty: 2 },
      ]) {
        expect(problemType((await buy(api, other)).body)).toBe('urn:fsale:problem:sold_out');
      }
      // The fast path only reads.
      expect(await fullState(s, 'lostlast')).toEqual(before);
    });
  });

  describe('sale rules', () => {
    it('enforces the per-user limit across requests', async () => {
      await seed(s, { productId: 'two', stock: 10, perUserLimit: 2 });
      const token = tokenFor('greedy');
      expect((await buy(api, { token, productId: 'two', key: freshKey() })).status).toBe(ACCEPTED);
      expect((await buy(api, { token, productId: 'two', key: freshKey() })).status).toBe(ACCEPTED);
      const third = await buy(api, { token, productId: 'two', key: freshKey() });
      expect(third.status).toBe(409);
      expect(problemType(third.body)).toBe('urn:fsale:problem:limit_reached');
      const double = await buy(api, {
        token: tokenFor('other'),
        productId: 'two',
        key: freshKey(),
        qty: 3,
      });
      expect(problemType(double.body)).toBe('urn:fsale:problem:limit_reached');
      expect(await saleState(s, 'two')).toMatchObject({ stock: '8', bought: { greedy: '2' } });
      expect(await acceptedOrders('two')).toHaveLength(2);
    });

    it('refuses a sale that has not started, without recording the answer', async () => {
      await seed(s, { productId: 'later', stock: 10, startsAt: new Date(Date.now() + 3_600_000) });
      const before = await fullState(s, 'later');
      const r = await buy(api, { token: tokenFor('early'), productId: 'later', key: freshKey() });
      expect(r.status).toBe(409);
      expect(problemType(r.body)).toBe('urn:fsale:problem:not_open');
      expect(await fullState(s, 'later')).toEqual(before);
    });

    it('an unknown product is a 404', async () => {
      const r = await buy(api, { token: tokenFor('u6'), productId: 'nosuch', key: freshKey() });
      expect(r.status).toBe(404);
      expect(problemType(r.body)).toBe('urn:fsale:problem:product_not_found');
    });

    it('qty must be an integer from 1 (no coercion, no extra fields)', async () => {
      await seed(s, { productId: 'qty', stock: 10, perUserLimit: 5 });
      const before = await fullState(s, 'qty');
      for (const body of [
        { productId: 'qty', qty: 0 },
        { productId: 'qty', qty: -1 },
        { productId: 'qty', qty: 1.5 },
        { productId: 'qty', qty: '1' },
        { productId: 'qty' },
        { productId: 'qty', qty: 1, price: 0 },
      ]) {
        const r = await send(api.url, {
          method: 'POST',
          path: '/order/buy',
          headers: { authorization: `Bearer ${tokenFor('u7')}`, 'idempotency-key': freshKey() },
          body,
        });
        expect(r.status, JSON.stringify(body)).toBe(400);
      }
      expect(await fullState(s, 'qty')).toEqual(before);
    });

    it('more units than are left is insufficient_stock, and the rest can still be bought', async () => {
      await seed(s, { productId: 'few', stock: 2, perUserLimit: 5 });
      const r = await buy(api, {
        token: tokenFor('u8'),
        productId: 'few',
        key: freshKey(),
        qty: 3,
      });
      expect(problemType(r.body)).toBe('urn:fsale:problem:insufficient_stock');
      expect(
        (await buy(api, { token: tokenFor('u8'), productId: 'few', key: freshKey(), qty: 2 }))
          .status,
      ).toBe(ACCEPTED);
    });
  });

  it(`answers an accept with ${ACCEPTED_STATUS[mode]}: ${mode === 'sync' ? 'the order is in PostgreSQL at once' : 'queued, persisted later by the order worker'}`, async () => {
    await seed(s, { productId: 'shape', stock: 5, priceCents: 1250 });
    const token = tokenFor('shaper');
    const r = await buy(api, { token, productId: 'shape', key: freshKey() });
    expect(r.status).toBe(ACCEPTED);
    const body = JSON.parse(r.body) as { orderId: string; status: string; statusUrl: string };
    expect(body).toEqual({
      orderId: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      status: ACCEPTED_ORDER_STATUS[mode],
      statusUrl: `/order/${body.orderId}`,
    });
    expect(r.headers['location']).toBe(body.statusUrl);
    const persisted = await persistedOrders(s, 'shape');
    const view = JSON.parse(
      (await send(api.url, { path: body.statusUrl, headers: { authorization: `Bearer ${token}` } }))
        .body,
    ) as { status: string };
    if (mode === 'sync') {
      expect(persisted).toEqual([{ id: body.orderId, user_id: 'shaper', status: 'pending' }]);
      expect(await pgState(s, 'shape')).toMatchObject({ orders: 1, remaining: 4 });
      expect(view.status).toBe('pending');
    } else {
      expect(persisted).toEqual([]);
      expect(await pgState(s, 'shape')).toMatchObject({ orders: 0, remaining: 5 });
      expect(view.status).toBe('queued');
    }
    // Both modes: the live stock in Redis is already down by one.
    expect(await saleState(s, 'shape')).toMatchObject({ stock: '4', bought: { shaper: '1' } });
  });

  describe('sold-out fast path', () => {
    it('a retry of an accepted buy still gets its accept after the product sold out', async () => {
      await seed(s, { productId: 'last', stock: 1 });
      const winner = tokenFor('winner');
      const key = freshKey();
      const first = await buy(api, { token: winner, productId: 'last', key });
      expect(first.status).toBe(ACCEPTED);
      // The process now knows 'last' is sold out (the accept took the last unit).
      const loser = await buy(api, {
        token: tokenFor('loser'),
        productId: 'last',
        key: freshKey(),
      });
      expect(problemType(loser.body)).toBe('urn:fsale:problem:sold_out');
      const retry = await buy(api, { token: winner, productId: 'last', key });
      expect(retry.status).toBe(ACCEPTED);
      expect(retry.body).toBe(first.body);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      const mismatch = await buy(api, { token: winner, productId: 'last', key, qty: 2 });
      expect(mismatch.status).toBe(422);
    });

    it('sold_out is not final for a key, on the fast path and in the buy itself: after a release both keys win', async () => {
      await seed(s, { productId: 'final', stock: 2, perUserLimit: 1 });
      const keys = productKeys(s.keyPrefix, 'final');
      // Stock gone behind the API's back (no publish): the next buy runs the whole buy and
      // answers sold_out from there; the one after it takes the fast path.
      if (mode === 'queue') await s.redis.set(keys.stock, 0);
      else await s.pool.query("UPDATE products SET remaining = 0 WHERE id = 'final'");
      const viaBuy = { token: tokenFor('f1'), productId: 'final', key: freshKey() };
      const viaFastPath = { token: tokenFor('f2'), productId: 'final', key: freshKey() };
      expect(problemType((await buy(api, viaBuy)).body)).toBe('urn:fsale:problem:sold_out');
      // Once this process hears the product (it was seeded just now).
      await until('the fast path to engage', () => api.app.api.soldOut.isSoldOut('final'));
      expect(problemType((await buy(api, viaFastPath)).body)).toBe('urn:fsale:problem:sold_out');

      // Two units come back (as releases do: the new level is published).
      if (mode === 'sync')
        await s.pool.query("UPDATE products SET remaining = 2 WHERE id = 'final'");
      await s.redis.set(keys.stock, 2);
      await s.redis.spublish(keys.stockChannel, '2');
      await until('the product to re-open', () => !api.app.api.soldOut.isSoldOut('final'));
      for (const request of [viaBuy, viaFastPath]) {
        const retry = await buy(api, request);
        expect(retry.status, retry.body).toBe(ACCEPTED);
        expect(retry.headers['idempotent-replayed']).toBeUndefined();
      }
    });

    it("a release heard while a buy was in flight keeps that buy's sold_out answer from closing the product", async () => {
      await seed(s, { productId: 'overtaken', stock: 1 });
      const { soldOut, feed } = api.app.api;
      await feed.watch('overtaken');
      const keys = productKeys(s.keyPrefix, 'overtaken');
      // A buy is sent (the ticket), then a unit comes back and its publish arrives before the
      // buy's sold_out answer does: the two travel on different connections.
      const sent = soldOut.ticket('overtaken');
      let reopened = () => {};
      const heard = new Promise<void>((resolve) => (reopened = resolve));
      const listener = (productId: string, remaining: number) => {
        if (productId === 'overtaken' && remaining > 0) reopened();
      };
      feed.on('stock', listener);
      await s.redis.spublish(keys.stockChannel, '1');
      await heard;
      feed.off('stock', listener);
      soldOut.markSoldOut('overtaken', sent);
      expect(soldOut.isSoldOut('overtaken')).toBe(false);
      // An answer from a buy sent after the release closes it as before.
      soldOut.markSoldOut('overtaken', soldOut.ticket('overtaken'));
      expect(soldOut.isSoldOut('overtaken')).toBe(true);
    });

    it('20,000 rejected buys with fresh keys from one user leave nothing behind', async () => {
      const quiet = await startApi(s, { mode, buyPolicy: { rateLimit: 0 } });
      await seed(s, { productId: 'spam', stock: 3, perUserLimit: 1 });
      const token = tokenFor('spammer');
      expect((await buy(quiet, { token, productId: 'spam', key: freshKey() })).status).toBe(
        ACCEPTED,
      );
      const before = { redis: await productFootprint('spam'), pg: await databaseRows() };
      const answers = new Map<string, number>();
      for (let batch = 0; batch < 100; batch++) {
        const replies = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            // qty 3 > 2 left: insufficient_stock; qty 1: limit_reached (one already bought).
            buy(quiet, { token, productId: 'spam', key: freshKey(), qty: i % 2 === 0 ? 3 : 1 }),
          ),
        );
        for (const r of replies) {
          const type = r.status === 409 ? problemType(r.body) : String(r.status);
          answers.set(type, (answers.get(type) ?? 0) + 1);
        }
      }
      expect(Object.fromEntries(answers)).toEqual({
        'urn:fsale:problem:insufficient_stock': 10_000,
        'urn:fsale:problem:limit_reached': 10_000,
      });
      // The bound: a rejection writes nothing, so neither the product's Redis keys and bytes
      // nor any PostgreSQL table grows.
      expect({ redis: await productFootprint('spam'), pg: await databaseRows() }).toEqual(before);
    });

    it('a release re-opens the product within a second', async () => {
      await seed(s, { productId: 'reopen', stock: 1 });
      const first = await buy(api, { token: tokenFor('r1'), productId: 'reopen', key: freshKey() });
      expect(first.status).toBe(ACCEPTED);
      expect(
        (await buy(api, { token: tokenFor('r2'), productId: 'reopen', key: freshKey() })).status,
      ).toBe(409);
      if (mode === 'sync') {
        // The order is in PostgreSQL already: decline it as the payment worker does (PG, then
        // the release script, which publishes the new level).
        const { orderId } = JSON.parse(first.body) as { orderId: string };
        const order = {
          id: orderId,
          productId: 'reopen',
          userId: 'r1',
          qty: 1,
          status: 'pending' as const,
        };
        expect(await settleFailed(s, order, 'pending', 'declined in a test', undefined)).toBe(true);
      } else {
        // What the payment worker's release does: give the unit back and publish the new level.
        const keys = productKeys(s.keyPrefix, 'reopen');
        const left = await s.redis.incrby(keys.stock, 1);
        await s.redis.spublish(keys.stockChannel, String(left));
      }
      await new Promise((r) => setTimeout(r, 1000));
      expect(
        (await buy(api, { token: tokenFor('r3'), productId: 'reopen', key: freshKey() })).status,
      ).toBe(ACCEPTED);
    });
  });
});
