// The sale feed on a real local Redis Cluster (3 masters + 3 replicas): stock and order changes
// travel by sharded pub/sub, on the master that owns their product's slot only, and the feed
// follows a failover of that master by itself.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../src/infra/local-cluster.js';
import { isCluster, type Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { readLayout } from '../../src/redis/sale-state.js';
import { lendUnits, receiveUnits } from '../../src/redis/scripts.js';
import { keySlot } from '../../src/redis/slots.js';
import { seedProduct } from '../../src/sale/seed.js';
import { send } from '../helpers/http.js';
import { useLocalCluster } from '../helpers/local-cluster.js';
import { buy, freshKey, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { connectSse, type ReceivedEvent } from '../helpers/sse-client.js';
import { until } from '../helpers/wait.js';

let cluster: LocalCluster;
let s: TestServices;
let redis: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  let onCluster: TestServices;
  ({ cluster, redis, services: onCluster } = await useLocalCluster(s, { nodeTimeoutMs: 1000 }));
  api = await startApi(onCluster, { buyPolicy: { rateLimit: 0 } });
});

const ctx = () => ({ pool: s.pool, redis, keyPrefix: s.keyPrefix });
const remaining = (e: ReceivedEvent) => (JSON.parse(e.data) as { remaining: number }).remaining;
const masters = () => (isCluster(redis) ? redis.nodes('master') : [redis]);

async function shardSubscribers(channel: string): Promise<number[]> {
  return Promise.all(
    masters().map(
      async (node) => ((await node.pubsub('SHARDNUMSUB', channel)) as [string, number])[1],
    ),
  );
}

describe('the sale feed on a Redis Cluster', () => {
  it('a product seeded after the API started is heard on its own master only, with no broadcast channel', async () => {
    const productId = 'late';
    await seedProduct(ctx(), { productId, stock: 5, perUserLimit: 5 });
    const stream = await connectSse(`${api.url}/stock/${productId}/stream`);
    expect(stream.status).toBe(200);
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === 5);
    const bought = await buy(api, { token: tokenFor('l1'), productId, key: freshKey() });
    expect(bought.status).toBe(202);
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === 4);

    const channel = productKeys(s.keyPrefix, productId).stockChannel;
    const owner = await cluster.masterOf(keySlot(channel));
    const counts = await shardSubscribers(channel);
    // One subscription in all, on the owner of the slot; no node carries a classic channel or
    // pattern of the sale (every classic PUBLISH would cross the cluster bus to every node).
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1);
    const onOwner = masters().find((node) => node.options.port === owner.port);
    expect(((await onOwner?.pubsub('SHARDNUMSUB', channel)) as [string, number])[1]).toBe(1);
    for (const node of masters()) {
      expect(await node.pubsub('CHANNELS', `${s.keyPrefix}*`)).toEqual([]);
      expect(await node.pubsub('NUMPAT')).toBe(0);
    }
    stream.close();
  });

  it('units moving between two shards stay in the product total that SSE shows', async () => {
    const productId = 'moving';
    await seedProduct(ctx(), { productId, stock: 30, stockShards: 3, perUserLimit: 1 });
    const layout = await readLayout(redis, s.keyPrefix, productId);
    const [from, , to] = layout.shards;
    if (from === undefined || to === undefined) throw new Error('three shards');
    const stream = await connectSse(`${api.url}/stock/${productId}/stream`);
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === 30);

    // A move cut in the middle (as by a crash between its two halves): lent, not received.
    const transferId = randomUUID();
    const lent = await lendUnits(redis, from, to, transferId, 4);
    expect(lent.lent).toBeGreaterThanOrEqual(4);
    const product = async () =>
      (
        JSON.parse((await send(api.url, { path: `/products/${productId}` })).body) as {
          remaining: number;
        }
      ).remaining;
    expect(await product()).toBe(30);
    // A buy after it: the feed's total moves by the buy alone, never by the units in transit.
    expect((await buy(api, { token: tokenFor('m1'), productId, key: freshKey() })).status).toBe(
      202,
    );
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === 29);
    expect(await receiveUnits(redis, to, transferId, lent.lent)).toBe(true);
    await until('the receive to be heard', () =>
      stream.events.some((e, i) => i > 0 && e.event === 'stock' && remaining(e) === 29),
    );
    expect(stream.events.filter((e) => e.event === 'stock').map(remaining)).not.toContain(
      30 - lent.lent,
    );
    stream.close();
  });

  it('follows a failover of its product master: SSE clients hear the promoted master', async () => {
    const productId = 'promoted';
    await seedProduct(ctx(), { productId, stock: 50, perUserLimit: 1 });
    const stream = await connectSse(`${api.url}/stock/${productId}/stream`);
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === 50);
    const slot = keySlot(productKeys(s.keyPrefix, productId).stock);
    const master = await cluster.masterOf(slot);
    // Replication is asynchronous: the replica must have the sale before its master dies.
    const primary = masters().find((node) => node.options.port === master.port);
    await until('the replica to have caught up', async () => {
      const info = (await primary?.info('replication')) ?? '';
      const offset = /master_repl_offset:(\d+)/.exec(info)?.[1];
      return offset !== undefined && offset === /slave0:.*offset=(\d+)/.exec(info)?.[1];
    });
    process.kill(master.pid, 'SIGKILL');
    let attempts = 0;
    await until(
      'a buy to be accepted by the promoted master',
      async () => {
        attempts += 1;
        const r = await buy(api, { token: tokenFor(`p${attempts}`), productId, key: freshKey() });
        // While the slot has no master: 503 (an outcome_unknown one may still have run).
        if (r.status !== 202) expect(r.status, r.body).toBe(503);
        return r.status === 202;
      },
      60_000,
      200,
    );
    const left = Number(await redis.get(productKeys(s.keyPrefix, productId).stock));
    expect(left).toBeLessThan(50);
    await stream.waitFor((e) => e.event === 'stock' && remaining(e) === left);
    expect((await cluster.masterOf(slot)).port).not.toBe(master.port);
    await cluster.restart(master);
    stream.close();
  });
});
