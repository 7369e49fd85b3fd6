// A private local Redis Cluster (3 masters + 3 replicas, src/infra/local-cluster.ts) for one
// test file, stopped and its data removed when the file ends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startRedisCluster,
  type LocalCluster,
  type RedisClusterOptions,
} from '../../src/infra/local-cluster.js';
import { Redis as NodeRedis } from 'ioredis';
import type { LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import { keySlot } from '../../src/redis/slots.js';
import { atFileEnd, type TestServices } from './services.js';

export interface TestCluster {
  cluster: LocalCluster;
  /** A persistent cluster client. */
  redis: Redis;
  /** The file's services (prefix, database) with the cluster as their Redis. */
  services: TestServices;
}

export async function useLocalCluster(
  s: TestServices,
  options: Omit<RedisClusterOptions, 'dataDir'> = {},
): Promise<TestCluster> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fsale-cluster-'));
  const cluster = await startRedisCluster({ ...options, dataDir });
  const redis = await connectRedis(cluster.url, { persistent: true });
  atFileEnd(async () => {
    redis.disconnect();
    await cluster.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { cluster, redis, services: { ...s, redis, redisUrl: cluster.url } };
}

/** The replica of the master serving `key`'s slot (a cluster with one replica per master). */
export async function replicaOfKey(cluster: LocalCluster, key: string): Promise<LocalService> {
  const master = await cluster.masterOf(keySlot(key));
  // This one node, not the cluster that connectRedis would make of its URL.
  const node = new NodeRedis({ port: master.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await node.connect();
    const info = await node.info('replication');
    const port = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(info)?.[1]);
    const replica = cluster.nodes.find((n) => n.port === port);
    if (replica === undefined) throw new Error(`no replica of ${master.port}: ${info}`);
    return replica;
  } finally {
    node.disconnect();
  }
}

/** Runs `during` with `node` stopped (SIGSTOP), and lets it go on (SIGCONT) whatever happens. */
export async function whileStopped<T>(node: LocalService, during: () => Promise<T>): Promise<T> {
  process.kill(node.pid, 'SIGSTOP');
  try {
    return await during();
  } finally {
    process.kill(node.pid, 'SIGCONT');
  }
}
