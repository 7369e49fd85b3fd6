// A whole queue-mode sale on a real local Redis Cluster (3 masters + 3 replicas): seed without
// cross-slot transactions, the API's buy path routed by slot, the sold-out fast path and the
// owner lookup across products in different slots, the order worker reading each product's
// stream on its own master, and the audit. No command of any of them may be CROSSSLOT.
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import type { LocalCluster } from '../../src/infra/local-cluster.js';
import type { Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { keySlot } from '../../src/redis/slots.js';
import { seedProduct } from '../../src/sale/seed.js';
import { startOrderWorker } from '../../src/workers/orders.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { replicaOfKey, useLocalCluster, whileStopped } from '../helpers/local-cluster.js';
import { send } from '../helpers/http.js';
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

describe('a sale on a Redis Cluster', () => {
  it('sells exactly the stock of two products on different masters, persists every order, audits clean', async () => {
    const products = ['north', 'south'];
    for (const productId of products) {
      await seedProduct(ctx(), { productId, stock: 150, perUserLimit: 1 });
    }
    const owners = await Promise.all(
      products.map((p) => cluster.masterOf(keySlot(productKeys(s.keyPrefix, p).stock))),
    );
    expect(new Set(owners.map((o) => o.port)).size).toBe(2);

    const users = Array.from({ length: 1000 }, (_, i) => `cu${i}`);
    const tokens = mintTokens(TEST_JWT_SECRET, users, 600);
    const answers = await Promise.all(
      tokens.map((token, i) =>
        buy(api, { token, productId: products[i % 2] ?? '', key: freshKey() }),
      ),
    );
    const byStatus: Record<number, number> = {};
    for (const r of answers) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    expect(byStatus).toEqual({ 202: 300, 409: 700 });

    // Before any worker: a queued order is found through the owner index of its product.
    const first = answers.findIndex((r) => r.status === 202);
    const firstId = (JSON.parse(answers[first]?.body ?? '{}') as { orderId: string }).orderId;
    const view = await send(api.url, {
      path: `/order/${firstId}`,
      headers: { authorization: `Bearer ${tokens[first] ?? ''}` },
    });
    expect(JSON.parse(view.body)).toMatchObject({ orderId: firstId, status: 'queued' });

    const worker = startOrderWorker({ ...ctx(), log: memoryLogger().logger }, { blockMs: 100 });
    try {
      await until('every order persisted', async () => {
        const { rows } = await s.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM orders WHERE product_id = ANY($1)',
          [products],
        );
        return rows[0]?.n === 300;
      });
      await until('every entry acknowledged', async () => {
        const pending = await Promise.all(
          products.map(async (p) => {
            const [count] = (await redis.xpending(
              productKeys(s.keyPrefix, p).orders,
              'persist',
            )) as [number];
            return count;
          }),
        );
        return pending.every((n) => n === 0);
      });
    } finally {
      await worker.stop();
    }
    expect(worker.stats()).toMatchObject({ persisted: 300, deadLettered: 0 });

    // The sold-out fast path knows both products are gone (the stock feed works on a cluster).
    await until('both products known sold out', () =>
      products.every((p) => api.app.api.soldOut.isSoldOut(p)),
    );
    const late = await buy(api, { token: tokenFor('late'), productId: 'north', key: freshKey() });
    expect(late.status).toBe(409);
    for (const p of products) expectAuditOk(await audit(onCluster, undefined, p));
  });

  it('with --durability replica a 202 waits for a replica; a stopped replica gives 503 outcome_unknown and the retry gets the one order', async () => {
    const productId = 'durable';
    await seedProduct(ctx(), { productId, stock: 10, perUserLimit: 5 });
    const durable = await startApi(onCluster, {
      buyPolicy: { rateLimit: 0, durability: { replicas: 1, timeoutMs: 300 } },
    });
    const token = tokenFor('careful');
    const ok = await buy(durable, { token, productId, key: freshKey() });
    expect(ok.status, ok.body).toBe(202);

    const keys = productKeys(s.keyPrefix, productId);
    const key = freshKey();
    const unsure = await whileStopped(await replicaOfKey(cluster, keys.stock), () =>
      buy(durable, { token, productId, key }),
    );
    expect(unsure.status, unsure.body).toBe(503);
    expect(JSON.parse(unsure.body)).toMatchObject({ type: 'urn:fsale:problem:outcome_unknown' });
    // The master did take it: the retry with the same key is its replay, not a second unit.
    const retry = await buy(durable, { token, productId, key });
    expect(retry.status, retry.body).toBe(202);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await redis.xlen(keys.orders)).toBe(2);
    expect(await redis.get(keys.stock)).toBe('8');
  });
  it('with --durability replica a replayed 202 waits for a replica too: through another API process, and on the sold-out fast path', async () => {
    const productId = 'durable-replay';
    await seedProduct(ctx(), { productId, stock: 1, perUserLimit: 1 });
    const durable = { buyPolicy: { rateLimit: 0, durability: { replicas: 1, timeoutMs: 300 } } };
    const [first, second, third] = await Promise.all([
      startApi(onCluster, durable),
      startApi(onCluster, durable),
      startApi(onCluster, durable),
    ]);
    const keys = productKeys(s.keyPrefix, productId);
    const request = { token: tokenFor('replayer'), productId, key: freshKey() };
    await whileStopped(await replicaOfKey(cluster, keys.stock), async () => {
      // The master takes the last unit; no replica has it.
      const unsure = await buy(first, request);
      expect(unsure.status, unsure.body).toBe(503);
      // Another process's connection wrote nothing the replica lacks: its replay must still
      // wait for the record to reach a replica.
      const elsewhere = await buy(second, request);
      expect(elsewhere.status, elsewhere.body).toBe(503);
      expect(JSON.parse(elsewhere.body)).toMatchObject({
        type: 'urn:fsale:problem:outcome_unknown',
        detail: expect.stringMatching(/no replica acknowledged/) as unknown,
      });
      // The same on the sold-out fast path (engaged by hand: the product is sold out).
      third.app.api.soldOut.markSoldOut(productId, third.app.api.soldOut.ticket(productId));
      expect(third.app.api.soldOut.isSoldOut(productId)).toBe(true);
      const fastPath = await buy(third, request);
      expect(fastPath.status, fastPath.body).toBe(503);
    });
    // Once a replica has it, every process replays the one order.
    for (const api of [second, third]) {
      await until('the replica to catch up', async () => (await buy(api, request)).status === 202);
      const replay = await buy(api, request);
      expect(replay.headers['idempotent-replayed']).toBe('true');
    }
    expect(await redis.xlen(keys.orders)).toBe(1);
    expect(await redis.get(keys.stock)).toBe('0');
  });
});
