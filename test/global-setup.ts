// Finds Redis and PostgreSQL for the test run: TEST_REDIS_URL / TEST_DATABASE_URL when set,
// else the machine's services on their standard ports when they answer, else private
// redis-server and postgres processes on free ports, stopped when the run ends.
// TEST_REDIS=cluster runs the tests on a private local Redis Cluster (3 masters + 3 replicas)
// instead (`npm run test:cluster`).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  isListening,
  startPostgresServer,
  startRedisServer,
  type LocalService,
} from '../src/infra/local-services.js';
import { startRedisCluster, type LocalCluster } from '../src/infra/local-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** A server URL; each test file creates and drops its own database on it. */
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started: LocalService[] = [];

  let redisUrl = process.env.TEST_REDIS_URL;
  let cluster: LocalCluster | undefined;
  let clusterDir = '';
  if (process.env.TEST_REDIS === 'cluster') {
    clusterDir = await mkdtemp(join(tmpdir(), 'fsale-cluster-'));
    cluster = await startRedisCluster({ dataDir: clusterDir });
    redisUrl = cluster.url;
  } else if (redisUrl === undefined) {
    if (await isListening('redis://127.0.0.1:6379')) redisUrl = 'redis://127.0.0.1:6379';
    else {
      const redis = await startRedisServer({
        dataDir: await mkdtemp(join(tmpdir(), 'fsale-redis-')),
      });
      started.push(redis);
      redisUrl = redis.url;
    }
  }

  let databaseUrl = process.env.TEST_DATABASE_URL;
  if (databaseUrl === undefined) {
    if (await isListening('postgres://127.0.0.1:5432')) {
      databaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
    } else {
      const pg = await startPostgresServer({
        dataDir: await mkdtemp(join(tmpdir(), 'fsale-pg-')),
        ephemeral: true,
      });
      started.push(pg);
      databaseUrl = pg.url;
    }
  }

  project.provide('redisUrl', redisUrl);
  project.provide('databaseUrl', databaseUrl);
  if (started.length > 0 || cluster !== undefined) {
    const urls = [...started.map((s) => s.url), ...(cluster === undefined ? [] : [cluster.url])];
    console.log(`tests use private servers: ${urls.join(', ')}`);
  }

  return async () => {
    if (cluster !== undefined) {
      await cluster.stop();
      await rm(clusterDir, { recursive: true, force: true });
    }
    for (const service of started) {
      await service.stop();
      await rm(service.dataDir, { recursive: true, force: true });
    }
  };
}
