import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { connectPostgres } from '../../src/db/pool.js';
import { connectRedis } from '../../src/redis/client.js';
import {
  ORDER_EVENT_NAMES,
  parseOrderEvent,
  type OrderEvent,
} from '../../src/domain/order-status.js';
import {
  idempotencyKey,
  ORDER_GROUP,
  orderEventsChannel,
  productKeys,
} from '../../src/redis/keys.js';
import { acceptedRecord } from '../../src/sale/buy.js';
import type { OrderWorkerOptions } from '../../src/workers/order-worker-settings.js';
import { startOrderWorker, type OrderWorker } from '../../src/workers/orders.js';
import { parseReadReply } from '../../src/redis/streams.js';
import { ON_CLUSTER, useTestServices, type TestServices } from '../helpers/services.js';
import {
  appendOrders,
  buyers,
  killStrayWorkers,
  persistedIds,
  productState,
  startWorkerProcess,
  stopWorkerProcess,
} from '../helpers/order-stream.js';
import { buy, seed, startApi, tokenFor } from '../helpers/sale.js';
import { deadLetters, rollBackBuy } from '../helpers/sale-state.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { sleep, until } from '../helpers/wait.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { startFaultProxy, throughProxy } from '../helpers/fault-proxy.js';
import { memoryLogger } from '../helpers/log.js';

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});
afterEach(killStrayWorkers);

/** The worker in this process, on a Redis connection of its own, logging into an array. */
async function inProcessWorker(
  options: OrderWorkerOptions = {},
  connections: { redisUrl?: string; pool?: Pool } = {},
) {
  const redis = await connectRedis(connections.redisUrl ?? s.redisUrl, { persistent: true });
  const memory = memoryLogger();
  const worker: OrderWorker = startOrderWorker(
    { pool: connections.pool ?? s.pool, redis, keyPrefix: s.keyPrefix, log: memory.logger },
    { blockMs: 100, claimIdleMs: 500, ...options },
  );
  return {
    worker,
    /** The messages the worker logged so far. */
    get log() {
      return memory.messages();
    },
    stop: async () => {
      await worker.stop();
      redis.disconnect();
    },
  };
}

async function settled(productIds: string[], rows: number): Promise<void> {
  await until(`${rows} orders persisted and acknowledged`, async () => {
    const states = await Promise.all(productIds.map((id) => productState(s, id)));
    return (
      states.reduce((n, st) => n + st.rows, 0) === rows && states.every((st) => st.pending === 0)
    );
  });
}

describe('fsale work orders', () => {
  it('persists every order of two products exactly once, takes their stock, acknowledges them', async () => {
    await seed(s, { productId: 'twin-a', stock: 500 });
    await seed(s, { productId: 'twin-b', stock: 500 });
    const a = await appendOrders(s, 'twin-a', buyers('a', 230));
    const b = await appendOrders(s, 'twin-b', [...buyers('b', 100), ...buyers('bulk', 50, 3)]);

    const worker = startWorkerProcess(s, ['--batch', '40', '--block', '100ms']);
    await settled(['twin-a', 'twin-b'], 380);
    const last = await stopWorkerProcess(worker);

    expect(await productState(s, 'twin-a')).toEqual({
      rows: 230,
      distinctIds: 230,
      unitsPersisted: 230,
      remaining: 270,
      redisStock: 270,
      pending: 0,
      deadLetters: 0,
    });
    expect(await productState(s, 'twin-b')).toEqual({
      rows: 150,
      distinctIds: 150,
      unitsPersisted: 250,
      remaining: 250,
      redisStock: 250,
      pending: 0,
      deadLetters: 0,
    });
    expect(await persistedIds(s, 'twin-a')).toEqual(new Set(a));
    expect(await persistedIds(s, 'twin-b')).toEqual(new Set(b));
    expect(last).toMatchObject({ persisted: 380, duplicates: 0, deadLettered: 0 });

    const row = await s.pool.query<{ status: string; user_id: string; qty: number }>(
      'SELECT status, user_id, qty FROM orders WHERE id = $1',
      [b.at(-1)],
    );
    expect(row.rows[0]).toEqual({ status: 'pending', user_id: 'bulk-49', qty: 3 });

    // A log record (pino's level, time and msg) with the status fields: the final one (a fast
    // run may end before the first interval's status record).
    expect(Object.keys(last)).toEqual(
      expect.arrayContaining([
        'level',
        'time',
        'msg',
        'persisted',
        'batches',
        'deadLettered',
        'claimed',
        'lagMs',
      ]),
    );
  });

  it('a redelivered batch changes nothing: no second row, stock taken once', async () => {
    await seed(s, { productId: 'again', stock: 50 });
    const ids = await appendOrders(s, 'again', buyers('again', 20));
    const first = await inProcessWorker();
    await settled(['again'], 20);
    await first.stop();

    // Everything delivered again, as after a crash between COMMIT and XACK.
    await s.redis.xgroup('SETID', productKeys(s.keyPrefix, 'again').orders, ORDER_GROUP, '0');
    const second = await inProcessWorker();
    await until('redelivery handled', async () => second.worker.stats().duplicates === 20);
    await second.stop();

    expect(second.worker.stats()).toMatchObject({ persisted: 0, duplicates: 20, deadLettered: 0 });
    expect(await productState(s, 'again')).toMatchObject({
      rows: 20,
      distinctIds: 20,
      remaining: 30,
      pending: 0,
    });
    expect(await persistedIds(s, 'again')).toEqual(new Set(ids));
  });

  it.each(['after-commit', 'before-commit'] as const)(
    'a worker SIGKILLed %s loses and duplicates nothing once another takes over',
    async (point) => {
      const [p1, p2] = [`kill-${point}-1`, `kill-${point}-2`];
      await seed(s, { productId: p1, stock: 100 });
      await seed(s, { productId: p2, stock: 100 });
      const ids1 = await appendOrders(s, p1, [...buyers('k1', 40), ...buyers('k1x', 10, 2)]);
      const ids2 = await appendOrders(s, p2, buyers('k2', 40));

      const doomed = startWorkerProcess(s, ['--batch', '10', '--consumer', `doomed-${point}`], {
        FSALE_FAULT: `orders:${point}`,
      });
      expect((await doomed.exited).signal).toBe('SIGKILL');

      const [mid1, mid2] = await Promise.all([productState(s, p1), productState(s, p2)]);
      const committed = mid1.rows + mid2.rows;
      const pending = mid1.pending + mid2.pending;
      // Nothing was acknowledged; after COMMIT the first batch is in PG, before COMMIT nothing.
      if (point === 'after-commit') expect(committed).toBeGreaterThan(0);
      else expect(committed).toBe(0);
      expect(pending).toBeGreaterThanOrEqual(Math.max(committed, 1));

      const rescuer = startWorkerProcess(s, [
        '--batch',
        '10',
        '--consumer',
        `rescuer-${point}`,
        '--claim-idle',
        '300ms',
        '--block',
        '100ms',
      ]);
      await settled([p1, p2], 90);
      const last = await stopWorkerProcess(rescuer);

      expect(last.claimed).toBe(pending);
      expect(last.duplicates).toBe(committed);
      expect(last.persisted).toBe(90 - committed);
      expect(await productState(s, p1)).toEqual({
        rows: 50,
        distinctIds: 50,
        unitsPersisted: 60,
        remaining: 40,
        redisStock: 40,
        pending: 0,
        deadLetters: 0,
      });
      expect(await productState(s, p2)).toMatchObject({
        rows: 40,
        distinctIds: 40,
        remaining: 60,
        redisStock: 60,
        pending: 0,
      });
      expect(await persistedIds(s, p1)).toEqual(new Set(ids1));
      expect(await persistedIds(s, p2)).toEqual(new Set(ids2));
    },
  );

  it('dead-letters an unparseable entry at once, persists an entry delivered too often on its own, and keeps going', async () => {
    await seed(s, { productId: 'poison', stock: 100 });
    const keys = productKeys(s.keyPrefix, 'poison');
    // An order some consumer keeps failing on: delivered 5 times already, idle for a minute.
    const [cursed] = await appendOrders(s, 'poison', [{ user: 'cursed' }]);
    const read = parseReadReply(
      await s.redis.xreadgroup(
        'GROUP',
        ORDER_GROUP,
        'ghost',
        'COUNT',
        1,
        'STREAMS',
        keys.orders,
        '>',
      ),
    );
    const cursedEntry = read[0]?.entries[0]?.id ?? '';
    await s.redis.xclaim(
      keys.orders,
      ORDER_GROUP,
      'ghost',
      0,
      cursedEntry,
      'IDLE',
      60_000,
      'RETRYCOUNT',
      5,
    );

    const before = await appendOrders(s, 'poison', buyers('before', 5));
    const poisonEntry = await s.redis.xadd(keys.orders, '*', 'id', 'not-a-uuid', 'qty', 'many');
    const after = await appendOrders(s, 'poison', buyers('after', 5));

    const worker = startWorkerProcess(s, [
      '--max-deliveries',
      '5',
      '--claim-idle',
      '1s',
      '--block',
      '100ms',
    ]);
    await until('poison handled', async () => {
      const st = await productState(s, 'poison');
      return st.rows === 11 && st.deadLetters === 1 && st.pending === 0;
    });
    // ... and the worker keeps persisting what comes next.
    const later = await appendOrders(s, 'poison', buyers('later', 5));
    await settled(['poison'], 16);
    const last = await stopWorkerProcess(worker);

    // The entry delivered six times is a valid order: persisted, not thrown away.
    expect(await persistedIds(s, 'poison')).toEqual(
      new Set([cursed, ...before, ...after, ...later]),
    );
    expect(last).toMatchObject({ persisted: 16, deadLettered: 1 });
    const letters = await deadLetters(s, 'poison');
    expect(letters).toEqual([
      expect.objectContaining({
        origin: poisonEntry,
        reason: 'unparseable',
        fields: ['id', 'not-a-uuid', 'qty', 'many'],
      }),
    ]);
    expect(worker.records.map((r) => r.msg).join('\n')).toContain('dead-lettered');
  });

  it("a PostgreSQL outage longer than the claim idle time: workers claim each other's entries, and none is dead-lettered for its delivery count", async () => {
    await seed(s, { productId: 'claimed', stock: 100 });
    const keys = productKeys(s.keyPrefix, 'claimed');
    const proxy = await startFaultProxy('127.0.0.1', Number(new URL(s.databaseUrl).port || 5432));
    const pool = await connectPostgres(throughProxy(s.databaseUrl, proxy), { max: 3 });
    const options = { claimIdleMs: 300, maxDeliveries: 1 };
    await proxy.cut();
    const first = await inProcessWorker({ ...options, consumer: 'first' }, { pool });
    const ids = await appendOrders(s, 'claimed', buyers('out', 10));
    await until('the first worker to hold every entry', async () => {
      return (await productState(s, 'claimed')).pending === 10;
    });
    // An idle second worker takes them over after the idle time (a second delivery each),
    // then the first one stops while PostgreSQL is still away.
    const second = await inProcessWorker({ ...options, consumer: 'second' }, { pool });
    await until('the second worker to claim them', async () => second.worker.stats().claimed >= 10);
    await first.worker.stop();
    await proxy.restore();
    try {
      await settled(['claimed'], 10);
      await until('every entry acknowledged', async () => {
        return (await productState(s, 'claimed')).pending === 0;
      });
      expect(await persistedIds(s, 'claimed')).toEqual(new Set(ids));
      expect(await productState(s, 'claimed')).toMatchObject({ rows: 10, deadLetters: 0 });
    } finally {
      await second.worker.stop();
      await pool.end();
      await proxy.close();
    }
    expect(await s.redis.xlen(keys.deadLetter)).toBe(0);
  });

  it('SIGTERM commits and acknowledges the batch in hand, then exits 0', async () => {
    await seed(s, { productId: 'busy', stock: 100_000 });
    const keys = productKeys(s.keyPrefix, 'busy');
    const worker = startWorkerProcess(s, ['--batch', '50', '--block', '100ms']);
    const production = { on: true };
    let appended = 0;
    const producer = (async () => {
      while (production.on) {
        appended += (await appendOrders(s, 'busy', buyers(`busy${appended}`, 50))).length;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await worker.waitForLine((line) => line.persisted >= 500);
    const last = await stopWorkerProcess(worker);
    production.on = false;
    await producer;

    const group = (await s.redis.xinfo('GROUPS', keys.orders)) as unknown[][];
    const info = new Map<unknown, unknown>();
    const fields = group[0] ?? [];
    for (let i = 0; i + 1 < fields.length; i += 2) info.set(fields[i], fields[i + 1]);
    const lastDelivered = String(info.get('last-delivered-id'));
    const delivered = await s.redis.xrange(keys.orders, '-', lastDelivered);
    const state = await productState(s, 'busy');

    expect(state.pending).toBe(0);
    expect(state.rows).toBe(delivered.length);
    expect(state.rows).toBe(last.persisted);
    expect(state.distinctIds).toBe(state.rows);
    expect(appended).toBeGreaterThan(state.rows); // it stopped with orders still to come
    // The orders it left are this test's: the next tests' workers must not find them.
    await s.redis.del(keys.orders);
  });

  it('dead-letters only the orders the PG stock guard refuses, one by one, and persists the rest', async () => {
    await seed(s, { productId: 'guarded', stock: 10 });
    // PostgreSQL holds less than Redis sold: an invariant violation the guard must catch.
    await s.pool.query('UPDATE products SET remaining = 3 WHERE id = $1', ['guarded']);
    const ids = await appendOrders(s, 'guarded', buyers('g', 6));
    const w = await inProcessWorker();
    await settled(['guarded'], 3);
    await until('dead letters', async () => (await productState(s, 'guarded')).deadLetters === 3);
    await w.stop();

    expect(await productState(s, 'guarded')).toMatchObject({ rows: 3, remaining: 0, pending: 0 });
    expect(await persistedIds(s, 'guarded')).toEqual(new Set(ids.slice(0, 3)));
    const letters = await deadLetters(s, 'guarded');
    expect(letters.map((l) => l.reason)).toEqual(['stock_guard', 'stock_guard', 'stock_guard']);
    expect(letters.map((l) => l.fields?.[1])).toEqual(ids.slice(3));
    expect(w.log.join('\n')).toContain('one by one');
  });

  it('supersedes an order whose idempotency key another order holds (released, the key answered by the holder), and skips a repeated id', async () => {
    await seed(s, { productId: 'dupkey', stock: 10 });
    const keys = productKeys(s.keyPrefix, 'dupkey');
    const first = newOrderId();
    const twin = newOrderId();
    const repeated = newOrderId();
    await appendOrders(s, 'dupkey', [
      { id: first, user: 'u1', key: 'same' },
      { id: twin, user: 'u1', key: 'same' },
      { id: repeated, user: 'u2' },
      { id: repeated, user: 'u2', key: `key-${repeated}` },
    ]);
    const w = await inProcessWorker();
    await until('handled', async () => {
      const st = await productState(s, 'dupkey');
      return st.pending === 0 && (await s.redis.hlen(keys.superseded)) === 1;
    });
    await w.stop();

    expect(await persistedIds(s, 'dupkey')).toEqual(new Set([first, repeated]));
    // The twin's unit is back in Redis (4 taken by the appends, 1 given back).
    expect(await productState(s, 'dupkey')).toMatchObject({
      rows: 2,
      remaining: 8,
      redisStock: 7,
      deadLetters: 0,
    });
    expect(await s.redis.hget(keys.superseded, twin)).toBe(first);
    expect(await s.redis.sismember(keys.released, twin)).toBe(1);
    expect(await s.redis.get(idempotencyKey(keys, 'u1', 'same'))).toBe(
      acceptedRecord(first, 'dupkey', 1),
    );
    expect(w.worker.stats()).toMatchObject({
      persisted: 2,
      duplicates: 1,
      deadLettered: 0,
      superseded: 1,
    });
    expect(w.log.join('\n')).toContain(`order ${twin} superseded by ${first}`);
  });

  it('a Redis rollback after the order reached PostgreSQL: the retry re-reserves under the same id, the worker counts a duplicate, and Redis stock matches PG again', async () => {
    await seed(s, { productId: 'rollback', stock: 10, perUserLimit: 1 });
    const keys = productKeys(s.keyPrefix, 'rollback');
    const api = await startApi(s);
    const w = await inProcessWorker();
    try {
      const token = tokenFor('rb');
      const first = await buy(api, { token, productId: 'rollback', key: 'rb-key' });
      expect(first.status).toBe(202);
      const { orderId } = JSON.parse(first.body) as { orderId: string };
      await settled(['rollback'], 1);
      await rollBackBuy(s, {
        productId: 'rollback',
        orderId,
        userId: 'rb',
        idempotencyKey: 'rb-key',
        qty: 1,
      });
      expect(await productState(s, 'rollback')).toMatchObject({ remaining: 9, redisStock: 10 });

      // Nothing in Redis remembers the buy: the retry is a new reservation, of the same order.
      const retry = await buy(api, { token, productId: 'rollback', key: 'rb-key' });
      expect(retry.status, retry.body).toBe(202);
      expect(retry.body).toBe(first.body);
      await until(
        'the re-reserved order counted a duplicate',
        () => w.worker.stats().duplicates === 1,
      );
      await settled(['rollback'], 1);
      expect(w.worker.stats()).toMatchObject({ persisted: 1, duplicates: 1, superseded: 0 });
      // Not released: the unit is the order's, held in Redis again as in PostgreSQL.
      expect(await s.redis.sismember(keys.released, orderId)).toBe(0);
      expect(await s.redis.hlen(keys.superseded)).toBe(0);
      expect(await productState(s, 'rollback')).toMatchObject({
        rows: 1,
        remaining: 9,
        redisStock: 9,
        deadLetters: 0,
      });
      expect(await s.redis.hgetall(keys.bought)).toEqual({ rb: '1' });
      const replay = await buy(api, { token, productId: 'rollback', key: 'rb-key' });
      expect(replay.body).toBe(first.body);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expectAuditOk(await audit(s, undefined, 'rollback'));
    } finally {
      await w.stop();
    }
  });

  it('announces order_persisted for each inserted order after its COMMIT, and not for a redelivery', async () => {
    await seed(s, { productId: 'announced', stock: 20 });
    // On a cluster, SSUBSCRIBE goes to the master of the channel's slot: a sharded subscriber.
    const subscriber = await connectRedis(s.redisUrl, { shardedSubscriber: true });
    const seen: Array<{ event: OrderEvent; inPg: Promise<boolean> }> = [];
    subscriber.on('smessage', (_channel: string, message: string) => {
      const event = parseOrderEvent(message);
      if (event?.productId !== 'announced') return;
      const inPg = s.pool
        .query('SELECT 1 FROM orders WHERE id = $1', [event.orderId])
        .then((r) => r.rowCount === 1);
      seen.push({ event, inPg });
    });
    await subscriber.ssubscribe(orderEventsChannel(s.keyPrefix, 'announced'));
    const ids = await appendOrders(s, 'announced', buyers('announced', 12));
    const w = await inProcessWorker();
    let stopped = false;
    try {
      await until('12 order_persisted events', () => seen.length >= 12);
      await w.stop();
      stopped = true;
      // A second worker re-reads nothing new; a redelivery of persisted orders announces nothing.
      const again = await inProcessWorker();
      await sleep(300);
      await again.stop();
      expect(seen.map(({ event }) => event.orderId).sort()).toEqual([...ids].sort());
      expect(seen.every(({ event }) => event.status === 'pending')).toBe(true);
      expect(seen.every(({ event }) => ORDER_EVENT_NAMES[event.status] === 'order_persisted')).toBe(
        true,
      );
      expect(await Promise.all(seen.map(({ inPg }) => inPg))).toEqual(ids.map(() => true));
    } finally {
      if (!stopped) await w.stop();
      subscriber.disconnect();
    }
  });

  it('picks up a product seeded while it runs', async () => {
    const w = await inProcessWorker({ productsRefreshMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await seed(s, { productId: 'latecomer', stock: 10 });
    await appendOrders(s, 'latecomer', buyers('late', 4));
    await settled(['latecomer'], 4);
    await w.stop();
    expect(await productState(s, 'latecomer')).toMatchObject({ remaining: 6, pending: 0 });
  });

  it('rides out a PostgreSQL outage: nothing acknowledged until committed, no crash', async () => {
    await seed(s, { productId: 'pg-outage', stock: 100 });
    const proxy = await startFaultProxy('127.0.0.1', Number(new URL(s.databaseUrl).port || 5432));
    const pool = await connectPostgres(throughProxy(s.databaseUrl, proxy), { max: 3 });
    const w = await inProcessWorker({}, { pool });
    try {
      await appendOrders(s, 'pg-outage', buyers('pre', 5));
      await settled(['pg-outage'], 5);

      await proxy.cut();
      await appendOrders(s, 'pg-outage', buyers('during', 10));
      await until('retries', async () => w.worker.stats().retries >= 2);
      const during = await productState(s, 'pg-outage');
      expect(during.rows).toBe(5);
      expect(during.pending).toBe(10); // delivered, held, not acknowledged

      await proxy.restore();
      await settled(['pg-outage'], 15);
    } finally {
      await w.stop();
      await pool.end();
      await proxy.close();
    }
    expect(await productState(s, 'pg-outage')).toMatchObject({ rows: 15, remaining: 85 });
    expect(w.log.filter((l) => l.startsWith('PostgreSQL error')).length).toBeLessThanOrEqual(2);
    expect(w.log.some((l) => l.startsWith('PostgreSQL recovered'))).toBe(true);
  });

  // The fault proxy stands in front of one node; a cluster client learns every node's address
  // from CLUSTER SLOTS and goes around it (scenario 15 takes a cluster node away instead).
  it.skipIf(ON_CLUSTER)('rides out a Redis outage and resumes where it was', async () => {
    await seed(s, { productId: 'redis-outage', stock: 100 });
    const proxy = await startFaultProxy('127.0.0.1', Number(new URL(s.redisUrl).port || 6379));
    const w = await inProcessWorker({}, { redisUrl: throughProxy(s.redisUrl, proxy) });
    try {
      await appendOrders(s, 'redis-outage', buyers('pre', 5));
      await settled(['redis-outage'], 5);

      await proxy.cut();
      await appendOrders(s, 'redis-outage', buyers('during', 10));
      await until('retries', async () => w.worker.stats().retries >= 2);
      expect((await productState(s, 'redis-outage')).rows).toBe(5);

      await proxy.restore();
      await settled(['redis-outage'], 15);
    } finally {
      await w.stop();
      await proxy.close();
    }
    expect(await productState(s, 'redis-outage')).toMatchObject({ rows: 15, remaining: 85 });
    expect(w.log.some((l) => l.startsWith('Redis recovered'))).toBe(true);
  });
});
