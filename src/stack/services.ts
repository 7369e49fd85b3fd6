import { join } from 'node:path';
import { UsageError } from '../domain/errors.js';
import { startRedisCluster } from '../infra/local-cluster.js';
import { parseRedisTarget } from '../redis/target.js';
import {
  findBinary,
  isListening,
  startPostgresServer,
  startRedisServer,
  type LocalService,
} from '../infra/local-services.js';

export interface ResolvedServices {
  redisUrl: string;
  databaseUrl: string;
  /** Private servers we started (stopped by `stop`). */
  started: LocalService[];
  notes: string[];
  stop(): Promise<void>;
}

/**
 * Uses REDIS_URL / DATABASE_URL when something answers there; otherwise starts a private
 * redis-server (AOF on, noeviction) and postgres (initdb on first run) with data under
 * `dataDir`, on free ports. Neither reachable nor installed: a UsageError naming the packages.
 */
export async function resolveServices(
  redisUrl: string,
  databaseUrl: string,
  dataDir: string,
  options: { redisCluster?: boolean } = {},
): Promise<ResolvedServices> {
  const started: LocalService[] = [];
  const notes: string[] = [];
  const stop = async () => {
    for (const service of started.reverse()) await service.stop();
  };
  try {
    let redis = redisUrl;
    const target = parseRedisTarget(redisUrl);
    // A cluster answers when any seed node does (the clients learn the rest from it).
    const seeds = target.kind === 'node' ? [redisUrl] : target.nodes;
    if (options.redisCluster === true) {
      // Always private: a cluster of our own, as the tests run it (AOF on here).
      const cluster = await startRedisCluster({
        dataDir: join(dataDir, 'redis-cluster'),
        appendOnly: true,
      });
      started.push(...cluster.nodes);
      redis = cluster.url;
      notes.push(
        `started a private Redis Cluster of 3 masters and 3 replicas at ${cluster.url} (AOF on, data in ${join(dataDir, 'redis-cluster')})`,
      );
    } else if (!(await Promise.all(seeds.map((seed) => isListening(seed)))).some(Boolean)) {
      if (findBinary('redis-server') === undefined) {
        throw new UsageError(
          `nothing answers at REDIS_URL ${redisUrl} and redis-server is not installed: apt install redis-server (or set REDIS_URL)`,
        );
      }
      const service = await startRedisServer({ dataDir: join(dataDir, 'redis'), appendOnly: true });
      started.push(service);
      redis = service.url;
      notes.push(
        `nothing answered at ${redisUrl}: started a private redis-server at ${service.url} (AOF on, data in ${service.dataDir})`,
      );
    }
    let database = databaseUrl;
    if (!(await isListening(databaseUrl))) {
      if (findBinary('postgres') === undefined || findBinary('initdb') === undefined) {
        throw new UsageError(
          `nothing answers at DATABASE_URL ${databaseUrl} and PostgreSQL is not installed: apt install postgresql (or set DATABASE_URL)`,
        );
      }
      const service = await startPostgresServer({ dataDir: join(dataDir, 'postgres') });
      started.push(service);
      const url = new URL(service.url);
      url.pathname = new URL(databaseUrl).pathname;
      database = url.toString();
      notes.push(
        `nothing answered at ${databaseUrl}: started a private postgres at ${service.url} (data in ${service.dataDir})`,
      );
    }
    return { redisUrl: redis, databaseUrl: database, started, notes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
