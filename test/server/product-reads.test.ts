// GET /products/:id and GET /readyz are public and read PostgreSQL through the API's small
// pool, which GET /order/:id shares. A crowd refreshing the product page (or probing readiness)
// must not queue the owners' lookups (or anything else) behind it. Made-up product ids must
// not cost PostgreSQL anything.
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectPostgres } from '../../src/db/pool.js';
import { isProductSeeded } from '../../src/redis/sale-state.js';
import { DEFAULT_PRODUCT_SNAPSHOTS, ProductSnapshots } from '../../src/server/product-snapshots.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

const CROWD = 2_000;
const PROBES = 40;
const GHOSTS = 10_000;

interface Timed {
  status: number;
  ms: number;
}

async function timed(work: () => Promise<{ status: number }>): Promise<Timed> {
  const started = performance.now();
  const { status } = await work();
  return { status, ms: performance.now() - started };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const summary = (answers: Timed[]) =>
  `p50 ${percentile(
    answers.map((a) => a.ms),
    50,
  ).toFixed(1)} ms, p99 ${percentile(
    answers.map((a) => a.ms),
    99,
  ).toFixed(1)} ms, max ${Math.max(...answers.map((a) => a.ms)).toFixed(1)} ms`;

describe('GET /products/:id and GET /readyz under a crowd', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { buyPolicy: { rateLimit: 0 } });
    await seed(s, { productId: 'crowd', stock: 100_000, perUserLimit: 1_000 });
  });
  const seeded = (id: string) => isProductSeeded(s.redis, s.keyPrefix, id);

  /** Owners' lookups and buys, PROBES of each, all at once. */
  const probe = async (orderIds: string[], round: string) => {
    const token = tokenFor('prober');
    return Promise.all([
      Promise.all(
        orderIds.map((id) =>
          timed(() =>
            send(api.url, { path: `/order/${id}`, headers: { authorization: `Bearer ${token}` } }),
          ),
        ),
      ),
      Promise.all(
        Array.from({ length: PROBES }, (_, i) =>
          timed(() =>
            buy(api, { token: tokenFor(`${round}-b${i}`), productId: 'crowd', key: freshKey() }),
          ),
        ),
      ),
    ]);
  };

  // The two public routes that read PostgreSQL: each costs it at most one query a second per
  // process (product-snapshots.ts, routes/health.ts), whatever the crowd.
  it.each([
    ['product reads', '/products/crowd', 'products'],
    ['public readiness checks', '/readyz', 'readyz'],
  ])(
    `${CROWD} concurrent %s leave GET /order/:id and buys answering, none 5xx, and cost PostgreSQL one query a second`,
    async (what, path, tag) => {
      const token = tokenFor('prober');
      const orderIds = await Promise.all(
        Array.from({ length: PROBES }, async () => {
          const r = await buy(api, { token, productId: 'crowd', key: freshKey() });
          return (JSON.parse(r.body) as { orderId: string }).orderId;
        }),
      );

      // Alone: the figures to compare with (reported, not asserted).
      const [lookupsAlone, buysAlone] = await probe(orderIds, `${tag}-alone`);

      const { pool } = api.app.api;
      let checkouts = 0;
      const count = () => (checkouts += 1);
      pool.on('acquire', count);
      let answered = 0;
      const started = performance.now();
      const crowd = Promise.all(
        // fetch (undici) opens as many sockets as asked: all of them really are concurrent.
        Array.from({ length: CROWD }, () =>
          timed(() =>
            fetch(`${api.url}${path}`).then(async (r) => {
              await r.text();
              answered += 1;
              return r;
            }),
          ),
        ),
      );
      // Probe in the thick of it: the crowd has reached the server and most of it waits.
      await until('the crowd to reach the server', () => answered >= CROWD / 10, 120_000, 5);
      const [lookups, buys] = await probe(orderIds, `${tag}-crowd`);
      const reads = await crowd;
      const seconds = (performance.now() - started) / 1000;
      pool.off('acquire', count);

      console.log(
        [
          `${what} (${CROWD} at once, ${seconds.toFixed(1)} s): ${summary(reads)}`,
          `GET /order/:id alone: ${summary(lookupsAlone)}; during the crowd: ${summary(lookups)}`,
          `buys alone: ${summary(buysAlone)}; during the crowd: ${summary(buys)}`,
          `PostgreSQL checkouts during the crowd: ${checkouts}`,
        ].join('\n'),
      );
      expect(reads.map((r) => r.status)).toEqual(Array(CROWD).fill(200));
      expect(lookups.map((r) => r.status)).toEqual(Array(PROBES).fill(200));
      expect(buys.map((r) => r.status)).toEqual(Array(PROBES).fill(202));
      // Each lookup reads PostgreSQL at most twice (persisted? then again after the owner
      // index); the crowd adds at most one query per second it lasted, not one per request.
      expect(checkouts).toBeLessThanOrEqual(2 * PROBES + Math.ceil(seconds) + 1);
    },
  );

  it('a product is read from PostgreSQL at most once per second however many ask, and fresh after that', async () => {
    await seed(s, { productId: 'tick', stock: 10 });
    let now = 0;
    const snapshots = new ProductSnapshots(s.pool, seeded, {
      maxAgeMs: 1_000,
      maxConcurrentQueries: 2,
      maxWaiting: 1_000,
      maxEntries: 100,
      now: () => now,
    });
    const first = await Promise.all(Array.from({ length: 100 }, () => snapshots.get('tick')));
    expect(snapshots.queries).toBe(1);
    expect(first[0]).toMatchObject({ id: 'tick', stockTotal: 10, orders: {} });

    const orderId = (
      JSON.parse(
        (await buy(api, { token: tokenFor('ticker'), productId: 'tick', key: freshKey() })).body,
      ) as { orderId: string }
    ).orderId;
    await s.pool.query(
      `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
       VALUES ($1, 'tick', 'ticker', 1, 'pending', 'k-tick', now())`,
      [orderId],
    );
    now = 999;
    expect((await snapshots.get('tick'))?.orders).toEqual({});
    expect(snapshots.queries).toBe(1);
    now = 1_000;
    expect((await snapshots.get('tick'))?.orders).toEqual({ pending: 1 });
    expect(snapshots.queries).toBe(2);

    // A product Redis does not know costs PostgreSQL nothing.
    now = 5_000;
    await Promise.all(Array.from({ length: 50 }, () => snapshots.get('ghost')));
    expect(await snapshots.get('ghost')).toBeUndefined();
    expect(snapshots.queries).toBe(2);
  });

  it(`${GHOSTS} reads of made-up product ids, interleaved with the real product's, cost PostgreSQL nothing and never starve or evict it`, async () => {
    await seed(s, { productId: 'real', stock: 7 });
    // The snapshots' clock moves only between rounds: each round the real product's snapshot
    // is due for a refresh, in the middle of a flood of made-up ids.
    let clock = 0;
    // Fewer slots in the queue than reads in flight (the test agent's 256 sockets), so a flood
    // that queued for PostgreSQL would overflow it.
    const flooded = await startApi(s, { productSnapshots: { now: () => clock, maxWaiting: 64 } });
    const { products } = flooded.app.api;
    const ROUNDS = 5;
    const real: number[] = [];
    const ghosts: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      clock += 1_000;
      const reads = Array.from({ length: GHOSTS / ROUNDS + GHOSTS / ROUNDS / 20 }, async (_, i) => {
        const isReal = i % 21 === 10;
        const id = isReal ? 'real' : `ghost-${randomBytes(8).toString('hex')}`;
        const r = await send(flooded.url, { path: `/products/${id}` });
        if (!isReal) return ghosts.push(r.status);
        real.push(r.status);
        if (r.status === 200) expect(JSON.parse(r.body)).toMatchObject({ id, remaining: 7 });
      });
      await Promise.all(reads);
    }
    expect(real).toHaveLength(GHOSTS / 20);
    expect(real).toEqual(Array(real.length).fill(200));
    expect(ghosts).toEqual(Array(GHOSTS).fill(404));
    // One refresh of the real product per round, nothing for the made-up ids.
    expect(products.queries).toBe(ROUNDS);
  });

  it('while PostgreSQL cannot be read, a product is served as last read (and the failure is not retried per read); one never read answers the error', async () => {
    await seed(s, { productId: 'stale', stock: 3 });
    await seed(s, { productId: 'unread', stock: 3 });
    const pool = await connectPostgres(s.databaseUrl, { max: 2 });
    let now = 0;
    const snapshots = new ProductSnapshots(pool, seeded, {
      ...DEFAULT_PRODUCT_SNAPSHOTS,
      now: () => now,
    });
    const good = await snapshots.get('stale');
    expect(good).toMatchObject({ id: 'stale', stockTotal: 3 });
    // A real failure: the pool is gone, every query fails.
    await pool.end();
    now = 1_000;
    const during = await Promise.all(Array.from({ length: 20 }, () => snapshots.get('stale')));
    expect(during).toEqual(Array(20).fill(good));
    await expect(snapshots.get('unread')).rejects.toThrow(/pool/i);
    await expect(snapshots.get('unread')).rejects.toThrow(/pool/i);
    // One attempt per product and period, however many asked.
    expect(snapshots.queries).toBe(3);
    now = 2_000;
    expect(await snapshots.get('stale')).toEqual(good);
    expect(snapshots.queries).toBe(4);
  });

  it('the route serves counts that catch up with PostgreSQL', async () => {
    await seed(s, { productId: 'fresh', stock: 5 });
    const read = async () =>
      JSON.parse((await send(api.url, { path: '/products/fresh' })).body) as {
        orders: Record<string, number>;
        remaining: number;
      };
    expect((await read()).orders).toEqual({
      pending: 0,
      paid: 0,
      payment_failed: 0,
      needs_reconciliation: 0,
    });
    const r = await buy(api, { token: tokenFor('fresher'), productId: 'fresh', key: freshKey() });
    const { orderId } = JSON.parse(r.body) as { orderId: string };
    // Live stock is never cached.
    expect((await read()).remaining).toBe(4);
    await s.pool.query(
      `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
       VALUES ($1, 'fresh', 'fresher', 1, 'paid', 'k-fresh', now())`,
      [orderId],
    );
    await until(
      'the paid order to show in the counts',
      async () => (await read()).orders.paid === 1,
    );
  });
});
