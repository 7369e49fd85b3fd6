// A Redis Cluster of the test file's own (3 masters + 3 replicas from the Debian redis-server
// on free ports, src/infra/local-cluster.ts) with an in-process API in front of it: the test's
// database and key prefix, the cluster as their Redis. Stopped and removed when the file ends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisCluster, type LocalCluster } from '../../src/infra/local-cluster.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import type { AppOptions } from '../../src/server/app.js';
import { startApi, type RunningApi } from './sale.js';
import { atFileEnd, type TestServices } from './services.js';

export interface PrivateClusterSale {
  cluster: LocalCluster;
  /** A persistent client of the test's own on the cluster. */
  redis: Redis;
  /** The test's services with the cluster as their Redis. */
  onCluster: TestServices;
  api: RunningApi;
}

export async function startPrivateClusterSale(
  s: TestServices,
  tag: string,
  apiOptions: Partial<AppOptions> = {},
): Promise<PrivateClusterSale> {
  const dataDir = await mkdtemp(join(tmpdir(), `fsale-${tag}-`));
  const cluster = await startRedisCluster({ dataDir });
  const redis = await connectRedis(cluster.url, { persistent: true });
  // Registered before the API's own cleanup, so it runs after the API has closed.
  atFileEnd(async () => {
    redis.disconnect();
    await cluster.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const onCluster = { ...s, redis, redisUrl: cluster.url };
  const api = await startApi(onCluster, apiOptions);
  return { cluster, redis, onCluster, api };
}
