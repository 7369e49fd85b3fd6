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
import { connectRedis, type Redis } from '../../src/redis/client.js';
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
