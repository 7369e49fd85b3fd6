// GET /products/:id is public and reads PostgreSQL through the API's small pool, which
// GET /order/:id shares. A crowd refreshing the product page must not queue the owners'
// lookups (or anything else) behind it.
import { beforeAll, describe, expect, it } from 'vitest';
import { ProductSnapshots } from '../../src/server/product-snapshots.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

const CROWD = 2_000;
const PROBES = 40;

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

describe('GET /products/:id under a crowd', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { buyPolicy: { rateLimit: 0 } });
    await seed(s, { productId: 'crowd', stock: 100_000, perUserLimit: 1_000 });
  });

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

  it(`${CROWD} concurrent product reads leave GET /order/:id and buys answering, none 5xx, and cost PostgreSQL a handful of queries`, async () => {
    const token = tokenFor('prober');
    const orderIds = await Promise.all(
      Array.from({ length: PROBES }, async () => {
        const r = await buy(api, { token, productId: 'crowd', key: freshKey() });
        return (JSON.parse(r.body) as { orderId: string }).orderId;
      }),
    );

    // Alone: the figures to compare with (reported, not asserted).
    const [lookupsAlone, buysAlone] = await probe(orderIds, 'alone');

    const { pool } = api.app.api;
    let checkouts = 0;
    const count = () => (checkouts += 1);
    pool.on('acquire', count);
    let answered = 0;
    const crowd = Promise.all(
      // fetch (undici) opens as many sockets as asked: all of them really are concurrent.
      Array.from({ length: CROWD }, () =>
        timed(() =>
          fetch(`${api.url}/products/crowd`).then(async (r) => {
            await r.text();
            answered += 1;
            return r;
          }),
        ),
      ),
    );
    // Probe in the thick of it: the crowd has reached the server and most of it waits.
    await until('the crowd to reach the server', () => answered >= CROWD / 10, 120_000, 5);
    const [lookups, buys] = await probe(orderIds, 'crowd');
    const reads = await crowd;
    pool.off('acquire', count);

    console.log(
      [
        `product reads (${CROWD} at once): ${summary(reads)}`,
        `GET /order/:id alone: ${summary(lookupsAlone)}; during the crowd: ${summary(lookups)}`,
        `buys alone: ${summary(buysAlone)}; during the crowd: ${summary(buys)}`,
        `PostgreSQL checkouts during the crowd: ${checkouts}`,
      ].join('\n'),
    );
    expect(reads.map((r) => r.status)).toEqual(Array(CROWD).fill(200));
    expect(lookups.map((r) => r.status)).toEqual(Array(PROBES).fill(200));
    expect(buys.map((r) => r.status)).toEqual(Array(PROBES).fill(202));
    // Each lookup reads PostgreSQL at most twice (persisted? then again after the owner index);
    // the crowd adds at most a few snapshot refreshes, not one query per read.
    expect(checkouts).toBeLessThanOrEqual(2 * PROBES + 10);
  });

  it('a product is read from PostgreSQL at most once per second however many ask, and fresh after that', async () => {
    await seed(s, { productId: 'tick', stock: 10 });
    let now = 0;
    const snapshots = new ProductSnapshots(s.pool, {
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

    // Unknown products are remembered too, so made-up ids cannot each cost a query.
    now = 5_000;
    await Promise.all(Array.from({ length: 50 }, () => snapshots.get('ghost')));
    expect(await snapshots.get('ghost')).toBeUndefined();
    expect(snapshots.queries).toBe(3);
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
