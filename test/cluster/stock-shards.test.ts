// One hot product's stock split over shards on different masters of a real local Redis Cluster
// (docs/ARCHITECTURE.md section 10): exactly the stock sold, none left unsold while a buyer was
// told sold out, the per-user limit and idempotency across shards, a move of units between
// shards interrupted by a crash, and the audit over all of it.
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import type { LocalCluster } from '../../src/infra/local-cluster.js';
import type { Redis } from '../../src/redis/client.js';
import { keySlot } from '../../src/redis/slots.js';
import { deleteMatching } from '../../src/redis/client.js';
import { productKeyPatterns } from '../../src/redis/keys.js';
import { applyReleaseToRedis } from '../../src/sale/release.js';
import { rebuildRedis } from '../../src/workers/reconcile.js';
import { connectSse } from '../helpers/sse-client.js';
import {
  homeShard as homeShardFor,
  homeShardIndex,
  readLayout,
  readShardStocks,
  readStockTotal,
  transfersInTransit,
  unitsInTransit,
  type ProductLayout,
} from '../../src/redis/sale-state.js';
import { lendUnits } from '../../src/redis/scripts.js';
import { gatherUnits } from '../helpers/sale-state.js';
import { seedProduct } from '../../src/sale/seed.js';
import { borrowUnits, completeTransfers } from '../../src/sale/stock-shards.js';
import { isServiceOutage, mayHaveRun } from '../../src/domain/errors.js';
import { reconcileOnce } from '../../src/workers/reconcile.js';
import { startOrderWorker } from '../../src/workers/orders.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { replicaOfKey, useLocalCluster, whileStopped } from '../helpers/local-cluster.js';
import { buy, freshKey, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';
import { memoryLogger } from '../helpers/log.js';

let cluster: LocalCluster;
let s: TestServices;
/** The test's services with the cluster as their Redis. */
let onCluster: TestServices;
let redis: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  ({ cluster, redis, services: onCluster } = await useLocalCluster(s));
  api = await startApi(onCluster, { buyPolicy: { rateLimit: 0 } });
});

const ctx = () => ({ pool: s.pool, redis, keyPrefix: s.keyPrefix });

const shardStocks = (layout: ProductLayout) => readShardStocks(redis, layout);

/** `count` user ids whose home shard (of `shards`) is not `avoid`. */
function usersAwayFrom(avoid: number, shards: number, count: number, tag: string): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < count; i++) {
    if (homeShardIndex(`${tag}${i}`, shards) !== avoid) users.push(`${tag}${i}`);
  }
  return users;
}

async function persistAll(productId: string, orders: number): Promise<void> {
  const worker = startOrderWorker({ ...ctx(), log: memoryLogger().logger }, { blockMs: 100 });
  try {
    await until(`${orders} orders persisted`, async () => {
      const { rows } = await s.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM orders WHERE product_id = $1',
        [productId],
      );
      return rows[0]?.n === orders;
    });
  } finally {
    await worker.stop();
  }
}

const countStatuses = (answers: { status: number }[]) => {
  const byStatus: Record<number, number> = {};
  for (const r of answers) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return byStatus;
};

describe('a product whose stock is split over shards', () => {
  it('places its shards on every master and shows the summed stock', async () => {
    await seedProduct(ctx(), { productId: 'spread', stock: 1000, stockShards: 3 });
    const layout = await readLayout(redis, s.keyPrefix, 'spread');
    expect(layout.shards).toHaveLength(3);
    const masters = await Promise.all(
      layout.shards.map((keys) => cluster.masterOf(keySlot(keys.stock))),
    );
    expect(new Set(masters.map((m) => m.port)).size).toBe(3);
    expect(await shardStocks(layout)).toEqual([334, 333, 333]);
    expect(await readStockTotal(redis, layout)).toBe(1000);
    const product = await fetch(`${api.url}/products/spread`);
    expect(await product.json()).toMatchObject({ remaining: 1000, soldOut: false });
  });

  it('10,000 units over 8 shards, 40,000 buyers at once: exactly 10,000 accepted, the rest sold out, audit clean', async () => {
    const productId = 'hot8';
    await seedProduct(ctx(), { productId, stock: 10_000, stockShards: 8, perUserLimit: 1 });
    const users = Array.from({ length: 40_000 }, (_, i) => `h${i}`);
    const tokens = mintTokens(TEST_JWT_SECRET, users, 600);
    const answers = await Promise.all(
      tokens.map((token) => buy(api, { token, productId, key: freshKey() })),
    );
    const byStatus = countStatuses(answers);
    expect(byStatus).toEqual({ 202: 10_000, 409: 30_000 });
    const problems = new Set(
      answers
        .filter((a) => a.status === 409)
        .map((a) => (JSON.parse(a.body) as { type: string }).type),
    );
    expect([...problems]).toEqual(['urn:fsale:problem:sold_out']);

    const layout = await readLayout(redis, s.keyPrefix, productId);
    expect(await shardStocks(layout)).toEqual(Array(8).fill(0));
    expect(await unitsInTransit(redis, layout)).toBe(0);
    await persistAll(productId, 10_000);
    expectAuditOk(await audit(onCluster, undefined, productId));
  });

  it('the tail: every remaining unit sits in one shard and buyers from the other shards still get them all', async () => {
    const productId = 'tail';
    await seedProduct(ctx(), { productId, stock: 40, stockShards: 4, perUserLimit: 1 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    await gatherUnits(redis, layout, 3);
    expect(await shardStocks(layout)).toEqual([0, 0, 0, 40]);

    const users = usersAwayFrom(3, 4, 41, 'tail');
    const tokens = mintTokens(TEST_JWT_SECRET, users, 600);
    // One at a time first (each buyer's home shard is empty when it arrives), then at once.
    const first = [];
    for (const token of tokens.slice(0, 5))
      first.push(await buy(api, { token, productId, key: freshKey() }));
    const rest = await Promise.all(
      tokens.slice(5, 40).map((token) => buy(api, { token, productId, key: freshKey() })),
    );
    expect(countStatuses([...first, ...rest])).toEqual({ 202: 40 });
    const last = await buy(api, { token: tokens[40] ?? '', productId, key: freshKey() });
    expect(last.status).toBe(409);
    expect((JSON.parse(last.body) as { type: string }).type).toBe('urn:fsale:problem:sold_out');
    expect(await shardStocks(layout)).toEqual([0, 0, 0, 0]);
    await persistAll(productId, 40);
    expectAuditOk(await audit(onCluster, undefined, productId));
  });

  it('a buy that borrows counts once against the rate limit, however many rounds it takes', async () => {
    const productId = 'counted';
    await seedProduct(ctx(), { productId, stock: 4, stockShards: 2, perUserLimit: 4 });
    const user = usersAwayFrom(1, 2, 1, 'rl')[0] ?? '';
    await gatherUnits(redis, await readLayout(redis, s.keyPrefix, productId), 1);
    const strict = await startApi(onCluster, { buyPolicy: { rateLimit: 1, rateWindowMs: 60_000 } });
    const token = tokenFor(user);
    const first = await buy(strict, { token, productId, key: freshKey() });
    expect(first.status, first.body).toBe(202);
    const second = await buy(strict, { token, productId, key: freshKey() });
    expect(second.status).toBe(429);
  });

  it('borrowing never reports units missing that reached the home shard after its buy script ran', async () => {
    const productId = 'late-arrival';
    await seedProduct(ctx(), { productId, stock: 1, stockShards: 2, perUserLimit: 1 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    const home = layout.shards[1];
    if (home === undefined) throw new Error('two shards');
    // The buy script saw shard 1 empty; meanwhile another buyer's borrowing brought the unit.
    await gatherUnits(redis, layout, 1);
    expect(await borrowUnits(redis, layout, home, 1, 0)).toEqual({ kind: 'moved' });
    await redis.set(home.stock, 0);
    expect(await borrowUnits(redis, layout, home, 1, 0)).toEqual({ kind: 'short', units: 0 });
  });

  it('the per-user limit holds across shards: a user at the limit is told so and borrows nothing', async () => {
    const productId = 'limit';
    await seedProduct(ctx(), { productId, stock: 12, stockShards: 3, perUserLimit: 1 });
    const token = tokenFor('greedy');
    const attempts = await Promise.all(
      Array.from({ length: 20 }, () => buy(api, { token, productId, key: freshKey() })),
    );
    expect(countStatuses(attempts)).toEqual({ 202: 1, 409: 19 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    // Empty the user's home shard: a new attempt must still be refused by the limit, without
    // taking units from the other shards.
    const home = layout.shards[homeShardIndex('greedy', 3)];
    if (home === undefined) throw new Error('no home shard');
    await redis.set(home.stock, 0);
    const before = await shardStocks(layout);
    const again = await buy(api, { token, productId, key: freshKey() });
    expect(again.status).toBe(409);
    expect((JSON.parse(again.body) as { type: string }).type).toBe(
      'urn:fsale:problem:limit_reached',
    );
    expect(await shardStocks(layout)).toEqual(before);
    expect(await unitsInTransit(redis, layout)).toBe(0);
  });

  it('a retry with the same key gets the first answer, also after the product sold out', async () => {
    const productId = 'replay';
    await seedProduct(ctx(), { productId, stock: 6, stockShards: 3, perUserLimit: 2 });
    const users = Array.from({ length: 6 }, (_, i) => `r${i}`);
    const keys = users.map(() => freshKey());
    const firsts = await Promise.all(
      users.map((user, i) => buy(api, { token: tokenFor(user), productId, key: keys[i] })),
    );
    expect(countStatuses(firsts)).toEqual({ 202: 6 });
    const sold = await buy(api, { token: tokenFor('late'), productId, key: freshKey() });
    expect(sold.status).toBe(409);
    await until('sold out known', () => api.app.api.soldOut.isSoldOut(productId));
    const replays = await Promise.all(
      users.map((user, i) => buy(api, { token: tokenFor(user), productId, key: keys[i] })),
    );
    replays.forEach((replay, i) => {
      expect(replay.status).toBe(202);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(JSON.parse(replay.body)).toEqual(JSON.parse(firsts[i]?.body ?? '{}'));
    });
    const mismatch = await buy(api, { token: tokenFor('r0'), productId, key: keys[0], qty: 2 });
    expect(mismatch.status).toBe(422);
  });

  it('the stock stream and GET /products/:id show the product total, changed by a buy on any shard', async () => {
    const productId = 'feed';
    await seedProduct(ctx(), { productId, stock: 30, stockShards: 3, perUserLimit: 1 });
    const stream = await connectSse(`${api.url}/stock/${productId}/stream`);
    try {
      await stream.waitFor(
        (e) =>
          e.event === 'stock' && (JSON.parse(e.data) as { remaining: number }).remaining === 30,
      );
      for (const user of ['f1', 'f2', 'f3', 'f4']) {
        expect((await buy(api, { token: tokenFor(user), productId, key: freshKey() })).status).toBe(
          202,
        );
      }
      await stream.waitFor(
        (e) =>
          e.event === 'stock' && (JSON.parse(e.data) as { remaining: number }).remaining === 26,
      );
    } finally {
      stream.close();
    }
    const product = await fetch(`${api.url}/products/${productId}`);
    expect(await product.json()).toMatchObject({ remaining: 26 });
  });

  it("a release gives the units back to the buyer's home shard", async () => {
    const productId = 'give-back';
    await seedProduct(ctx(), { productId, stock: 9, stockShards: 3, perUserLimit: 1 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    const answer = await buy(api, { token: tokenFor('returner'), productId, key: freshKey() });
    const { orderId } = JSON.parse(answer.body) as { orderId: string };
    const home = homeShardIndex('returner', 3);
    const bought = await shardStocks(layout);
    expect(bought[home]).toBe(2);
    await applyReleaseToRedis(redis, s.pool, s.keyPrefix, {
      orderId,
      productId,
      userId: 'returner',
      qty: 1,
    });
    expect(await shardStocks(layout)).toEqual([3, 3, 3]);
    expect(await redis.hget(layout.shards[home]?.bought ?? '', 'returner')).toBeNull();
  });

  it('reconcile --rebuild-redis lays a sharded product out again after Redis lost it: stock, counts, replays', async () => {
    const productId = 'rebuilt';
    await seedProduct(ctx(), { productId, stock: 30, stockShards: 3, perUserLimit: 1 });
    const users = Array.from({ length: 10 }, (_, i) => `rb${i}`);
    const keys = users.map(() => freshKey());
    const firsts = await Promise.all(
      users.map((user, i) => buy(api, { token: tokenFor(user), productId, key: keys[i] })),
    );
    expect(countStatuses(firsts)).toEqual({ 202: 10 });
    await persistAll(productId, 10);
    // Redis loses the product.
    for (const pattern of productKeyPatterns(s.keyPrefix, productId))
      await deleteMatching(redis, pattern);
    await rebuildRedis(ctx());
    const layout = await readLayout(redis, s.keyPrefix, productId);
    expect(layout.shards).toHaveLength(3);
    expect(await readStockTotal(redis, layout)).toBe(20);
    for (const user of users) {
      expect(await redis.hget(homeShardFor(layout, user).bought, user)).toBe('1');
    }
    const replays = await Promise.all(
      users.map((user, i) => buy(api, { token: tokenFor(user), productId, key: keys[i] })),
    );
    replays.forEach((replay, i) => {
      expect(replay.status).toBe(202);
      expect(JSON.parse(replay.body)).toEqual(JSON.parse(firsts[i]?.body ?? '{}'));
    });
    expect((await buy(api, { token: tokenFor('rb0'), productId, key: freshKey() })).status).toBe(
      409,
    );
    expectAuditOk(await audit(onCluster, undefined, productId));
  });

  it('a move between shards cut by a crash stays counted (audit clean), and reconcile completes it', async () => {
    const productId = 'crash';
    await seedProduct(ctx(), { productId, stock: 9, stockShards: 3, perUserLimit: 1 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    const [a, b] = layout.shards;
    if (a === undefined || b === undefined) throw new Error('three shards');
    // The lender took the units and died before the destination received them.
    const { lent } = await lendUnits(redis, a, b, 'cut-1', 2);
    expect(lent).toBe(2);
    expect(await unitsInTransit(redis, layout)).toBe(2);
    expectAuditOk(await audit(onCluster, undefined, productId));
    const report = await reconcileOnce({ ...ctx(), gateway: unusedGateway });
    expect(report.transfersCompleted).toBe(1);
    expect(await unitsInTransit(redis, layout)).toBe(0);
    expect(await shardStocks(layout)).toEqual([1, 5, 3]);
    expectAuditOk(await audit(onCluster, undefined, productId));
    // Completing it again changes nothing.
    expect((await reconcileOnce({ ...ctx(), gateway: unusedGateway })).transfersCompleted).toBe(0);
    expect(await shardStocks(layout)).toEqual([1, 5, 3]);
  });

  describe('--durability replica: each step of a move between shards waits for a replica', () => {
    const durability = { replicas: 1, timeoutMs: 1_000 };
    /** Once the stopped replica is back: long enough for it to catch up. */
    const afterwards = { replicas: 1, timeoutMs: 10_000 };

    async function sixUnitsOnShardZero(productId: string) {
      await seedProduct(ctx(), { productId, stock: 6, stockShards: 3, perUserLimit: 1 });
      const layout = await readLayout(redis, s.keyPrefix, productId);
      await gatherUnits(redis, layout, 0);
      const [lender, home] = layout.shards;
      if (lender === undefined || home === undefined) throw new Error('three shards');
      return { layout, lender, home };
    }

    it("a lend no replica has goes no further: nothing received, and the buyer's 503 says when to retry", async () => {
      const productId = 'durable-lend';
      const { layout, lender, home } = await sixUnitsOnShardZero(productId);
      const durableApi = await startApi(onCluster, { buyPolicy: { rateLimit: 0, durability } });
      const user = ['dl0', 'dl1', 'dl2', 'dl3', 'dl4', 'dl5'].find(
        (u) => homeShardIndex(u, 3) === 1,
      );
      if (user === undefined) throw new Error('no user with home shard 1');
      const request = { token: tokenFor(user), productId, key: freshKey() };
      // The API learns the layout from a public read, so the buy goes straight to the home
      // shard (not first to shard 0's keys, whose replica is about to hang).
      expect((await fetch(`${durableApi.url}/products/${productId}`)).status).toBe(200);
      // The lender's replica hangs: its lend is on its master only. Receiving now would let a
      // failover of the lender give the units back while the home shard has them too.
      const refused = await whileStopped(await replicaOfKey(cluster, lender.stock), () =>
        buy(durableApi, request),
      );
      expect(refused.status, refused.body).toBe(503);
      expect(refused.body).toMatch(/urn:fsale:problem:unavailable/);
      expect(refused.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      const [lend, ...more] = await transfersInTransit(redis, lender);
      expect(more).toEqual([]);
      expect(lend?.units).toBe(2);
      expect(await redis.scard(home.received)).toBe(0);
      expect(await shardStocks(layout)).toEqual([4, 0, 0]);
      expect(await unitsInTransit(redis, layout)).toBe(2);

      // Replica back: the retry buys (with units lent anew), and the stalled move completes.
      expect((await buy(durableApi, request)).status).toBe(202);
      expect(await completeTransfers(redis, layout, afterwards)).toBe(1);
      expect(await unitsInTransit(redis, layout)).toBe(0);
      expect(await readStockTotal(redis, layout)).toBe(5);
    });

    it('a receive no replica has is not settled: the lender keeps the move in transit until the receive is replicated', async () => {
      const productId = 'durable-receive';
      const { layout, lender, home } = await sixUnitsOnShardZero(productId);
      // The home shard's replica hangs: its receive is on its master only. Settling now would
      // let a failover of the home shard lose the units while the lender has forgotten them.
      const failure = await whileStopped(await replicaOfKey(cluster, home.stock), () =>
        borrowUnits(redis, layout, home, 1, 0, durability).catch((e: unknown) => e),
      );
      expect(String(failure)).toMatch(/NOREPLICAS 0 of 1/);
      expect(isServiceOutage(failure)).toBe(true);
      // Nothing was reserved for the buyer: a plain outage, not outcome_unknown.
      expect(mayHaveRun(failure)).toBe(false);
      const [move, ...more] = await transfersInTransit(redis, lender);
      expect(more).toEqual([]);
      expect(await redis.sismember(home.received, move?.id ?? '')).toBe(1);
      expect(await shardStocks(layout)).toEqual([4, 2, 0]);

      // Completing it receives nothing twice (the receive is idempotent) and settles it.
      expect(await completeTransfers(redis, layout, afterwards)).toBe(1);
      expect(await transfersInTransit(redis, lender)).toEqual([]);
      expect(await shardStocks(layout)).toEqual([4, 2, 0]);
    });

    it('reconcile --durability replica completes a move only once each step is replicated, and keeps its pass', async () => {
      const productId = 'durable-reconcile';
      const { layout, lender, home } = await sixUnitsOnShardZero(productId);
      // A lender crashed after its lend: two units in transit to the home shard.
      expect((await lendUnits(redis, lender, home, 'cut-durable', 2)).lent).toBe(2);
      // The home shard's replica hangs: reconcile receives there, but settles nothing on a
      // receive only the master has; the pass ends normally and says what is waiting.
      const waiting = await whileStopped(await replicaOfKey(cluster, home.stock), () =>
        reconcileOnce({ ...ctx(), gateway: unusedGateway, durability }),
      );
      expect(waiting).toMatchObject({ transfersCompleted: 0, productsAwaitingReplica: 1 });
      const [move, ...more] = await transfersInTransit(redis, lender);
      expect(more).toEqual([]);
      expect(move?.id).toBe('cut-durable');
      // Received on the master (counted there, not in transit), not yet settled by the lender.
      expect(await redis.sismember(home.received, 'cut-durable')).toBe(1);
      expect(await shardStocks(layout)).toEqual([4, 2, 0]);
      expect(await readStockTotal(redis, layout)).toBe(6);
      expectAuditOk(await audit(onCluster, undefined, productId));

      // Replica back: the next pass settles the move, receiving nothing twice.
      const done = await reconcileOnce({
        ...ctx(),
        gateway: unusedGateway,
        durability: afterwards,
      });
      expect(done).toMatchObject({ transfersCompleted: 1, productsAwaitingReplica: 0 });
      expect(await transfersInTransit(redis, lender)).toEqual([]);
      expect(await shardStocks(layout)).toEqual([4, 2, 0]);
      expectAuditOk(await audit(onCluster, undefined, productId));
    });
  });
});

/** Reconcile with no order to settle never calls the gateway. */
const unusedGateway = {
  charge: () => Promise.reject(new Error('no charge expected')),
  void: () => Promise.reject(new Error('no void expected')),
} as unknown as Parameters<typeof reconcileOnce>[0]['gateway'];
