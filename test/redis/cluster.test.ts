// The local Redis Cluster harness (3 masters + 3 replicas from the Debian binary) and the
// cluster facts the rest of the system relies on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceOutage } from '../../src/domain/errors.js';
import { startRedisCluster, type LocalCluster } from '../../src/infra/local-cluster.js';
import { connectRedis, isCluster } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { connectBuyPath, RespCluster } from '../../src/redis/resp-cluster.js';
import { keySlot } from '../../src/redis/slots.js';

let dataDir: string;
let cluster: LocalCluster;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'fsale-cluster-'));
  cluster = await startRedisCluster({ dataDir });
});

afterAll(async () => {
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('a local Redis Cluster', () => {
  it('has 3 masters and 3 replicas covering every slot', async () => {
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
    const node = new Redis({ port: cluster.nodes[0]?.port ?? 0 });
    try {
      const info = String(await node.call('CLUSTER', 'INFO'));
      expect(info).toContain('cluster_state:ok');
      expect(info).toContain('cluster_slots_assigned:16384');
      expect(info).toContain('cluster_size:3');
    } finally {
      node.disconnect();
    }
  });

  it('computes the slot of every key exactly as CLUSTER KEYSLOT does', async () => {
    const node = new Redis({ port: cluster.nodes[0]?.port ?? 0 });
    try {
      const keys: string[] = [
        'a',
        'ünïcødé{tag}x',
        '{}',
        'foo{}{bar}',
        ...Object.values(productKeys('fsale', 'p1')).filter((k) => typeof k === 'string'),
        ...Array.from({ length: 300 }, (_, i) => `k${i}:{p:${i * 7919}}:x`),
      ];
      const slots = await Promise.all(keys.map((k) => node.call('CLUSTER', 'KEYSLOT', k)));
      expect(keys.map(keySlot)).toEqual(slots.map(Number));
    } finally {
      node.disconnect();
    }
  });

  it('a single node URL naming a cluster node is a cluster seed for both clients: every key reaches its master', async () => {
    const seed = `redis://127.0.0.1:${cluster.nodes[0]?.port ?? 0}`;
    // Keys in slots all over the cluster: a one-node client would get MOVED for most.
    const keys = Array.from({ length: 30 }, (_, i) => `single-seed:{p:${i}}:stock`);
    const masters = new Set(
      await Promise.all(keys.map(async (key) => (await cluster.masterOf(keySlot(key))).port)),
    );
    expect(masters.size).toBe(3);

    const redis = await connectRedis(seed);
    try {
      expect(isCluster(redis)).toBe(true);
      for (const [i, key] of keys.entries()) await redis.set(key, i);
    } finally {
      redis.disconnect();
    }
    const buyPath = await connectBuyPath(seed, { name: 'fsale-test-seed' });
    try {
      expect(buyPath).toBeInstanceOf(RespCluster);
      const values = await Promise.all(keys.map((key) => buyPath.call(['GET', key])));
      expect(values).toEqual(keys.map((_, i) => String(i)));
    } finally {
      await buyPath.quit();
    }
  });

  it('a cluster node named with another database than 0 is refused by both clients with one line saying why', async () => {
    const url = `redis://127.0.0.1:${cluster.nodes[0]?.port ?? 0}/3`;
    const why = /is a Redis Cluster node: a Redis Cluster has only database 0, got "\/3"$/;
    await expect(connectRedis(url)).rejects.toThrow(why);
    await expect(connectBuyPath(url, { name: 'fsale-test-seed' })).rejects.toThrow(why);
  });
});

describe("ioredis's Cluster client giving up", () => {
  it('is a service outage (503), not a bug (500): no seed node answers', async () => {
    // Port 1 on loopback: nothing listens. No retry: the client gives up at once.
    const client = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      clusterRetryStrategy: () => null,
    });
    const gaveUp = new Promise<unknown>((resolve) => client.once('error', resolve));
    const failed: unknown = await client.get('any').then(
      () => undefined,
      (error: unknown) => error,
    );
    try {
      expect(String(failed)).toMatch(/None of startup nodes is available/);
      expect(isServiceOutage(failed)).toBe(true);
      const event = await gaveUp;
      expect(String(event)).toMatch(/Failed to refresh slots cache/);
      expect(isServiceOutage(event)).toBe(true);
    } finally {
      client.disconnect();
    }
  });
});

describe('a local Redis Cluster started again on its directory', () => {
  it('resumes on its ports with its data (as fsale up --redis-cluster does on a second run), and says so plainly when a port is taken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fsale-cluster-again-'));
    try {
      const first = await startRedisCluster({ dataDir: dir, appendOnly: true });
      const writer = await connectRedis(first.url);
      await writer.set('{kept}:key', 'from the first run');
      writer.disconnect();
      await first.stop(); // SIGTERM: each node writes its AOF out before it exits

      const second = await startRedisCluster({ dataDir: dir, appendOnly: true });
      try {
        expect(second.nodes.map((node) => node.port)).toEqual(first.nodes.map((node) => node.port));
        const reader = await connectRedis(second.url);
        try {
          expect(await reader.get('{kept}:key')).toBe('from the first run');
        } finally {
          reader.disconnect();
        }
        // A third start while the second runs: its ports are taken.
        await expect(startRedisCluster({ dataDir: dir, appendOnly: true })).rejects.toThrow(
          /runs on ports .* is taken: stop what holds it, or remove/,
        );
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
