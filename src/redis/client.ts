import { Cluster, Redis as NodeRedis, ReplyError, type ChainableCommander } from 'ioredis';
import { ServiceUnavailableError } from '../domain/errors.js';
import { notReplicated, type Durability } from './resp.js';
import { reconnectDelayMs } from './resp-client.js';
import { defineScripts } from './scripts.js';
import { clusterSeedError, isClusterNode, nodeHostPort, parseRedisTarget } from './target.js';

/**
 * A Redis connection for everything but the buy path: one node, or a Redis Cluster (REDIS_URL
 * names seed nodes, `redis://h1:p1,h2:p2`). The cluster client sends each command to the master
 * of its key's slot; every multi-key command and MULTI fsale sends stays within one product's
 * hash tag, so within one slot.
 */
export type Redis = NodeRedis | Cluster;

export function isCluster(redis: Redis): redis is Cluster {
  return redis instanceof Cluster;
}

export interface RedisOptions {
  /** Shown in CLIENT LIST, so an operator can tell fsale's connections apart. */
  name?: string;
  /** Keep reconnecting forever (servers and workers) instead of failing the first command. */
  persistent?: boolean;
  /** Send the commands issued in one event-loop tick in one write (ioredis auto-pipelining). */
  autoPipelining?: boolean;
  /**
   * A subscriber for sharded pub/sub (SSUBSCRIBE): on a cluster, one connection per master,
   * each channel subscribed on the master of its slot and moved after a failover or a reshard.
   */
  shardedSubscriber?: boolean;
}

/**
 * A connected client with fsale's scripts defined. Commands never queue while disconnected:
 * a request during a Redis outage fails at once (the API answers 503) instead of piling up.
 * A one-node URL whose node has cluster mode on is taken as a cluster seed (INFO cluster).
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const target = parseRedisTarget(url);
  const node = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    connectionName: options.name ?? 'fsale',
    retryStrategy: options.persistent === true ? reconnectDelayMs : () => null,
  };
  const connectCluster = (seeds: string[]) =>
    open(
      url,
      new Cluster(seeds.map(nodeHostPort), {
        lazyConnect: true,
        enableOfflineQueue: false,
        enableAutoPipelining: options.autoPipelining === true,
        // Slot map refreshes and redirections (MOVED/ASK, a failover) are ioredis's.
        clusterRetryStrategy: options.persistent === true ? reconnectDelayMs : () => null,
        shardedSubscribers: options.shardedSubscriber === true,
        redisOptions: { ...redisAuth(seeds[0] ?? ''), ...node },
      }),
    );
  if (target.kind === 'cluster') return connectCluster(target.nodes);
  const redis = await open(
    url,
    new NodeRedis(url, {
      ...node,
      lazyConnect: true,
      enableAutoPipelining: options.autoPipelining === true,
    }),
  );
  let info: string;
  try {
    info = await redis.info('cluster');
  } catch (error) {
    // A server that refuses INFO (an ACL) is taken for what its URL says: one node.
    if (error instanceof ReplyError) return redis;
    redis.disconnect();
    throw new ServiceUnavailableError('Redis', url, error);
  }
  if (!isClusterNode(info)) return redis;
  redis.disconnect();
  const refused = clusterSeedError(url);
  if (refused !== undefined) throw refused;
  return connectCluster([url]);
}

/** Defines fsale's scripts on `redis` and connects it; ServiceUnavailableError if it cannot. */
async function open<R extends Redis>(url: string, redis: R): Promise<R> {
  defineScripts(redis);
  // Errors surface on the commands that hit them; an unhandled 'error' event would crash us.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new ServiceUnavailableError('Redis', url, error);
  }
  return redis;
}

/** Credentials and TLS of a seed URL, for the cluster's node connections. */
function redisAuth(url: string): { username?: string; password?: string; tls?: object } {
  const parsed = new URL(url);
  return {
    ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** Calls `each` with every batch of keys matching `pattern` (SCAN: Redis is never blocked). */
async function forEachKeyBatch(
  redis: Redis,
  pattern: string,
  each: (keys: string[]) => Promise<void>,
): Promise<void> {
  // A cluster's keys are spread over its masters: each is scanned in turn.
  for (const node of isCluster(redis) ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await each(keys);
    } while (cursor !== '0');
  }
}

/** Every key matching `pattern` (for tests and diagnostics: it holds them all in memory). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  await forEachKeyBatch(redis, pattern, async (keys) => {
    found.push(...keys);
  });
  return found;
}

/**
 * Deletes every key matching `pattern`, in batches. On a cluster keys go one by one (a
 * multi-key UNLINK must stay within one slot).
 */
export async function deleteMatching(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  await forEachKeyBatch(redis, pattern, async (keys) => {
    if (!isCluster(redis)) deleted += await redis.unlink(...keys);
    else for (const key of keys) deleted += await redis.unlink(key);
  });
  return deleted;
}

/**
 * Executes `pipeline` (commands on one slot) with WAIT after it in the same write: a pipeline
 * goes to one node over one connection, so WAIT counts exactly its writes. Resolves with the
 * first command's reply once `durability.replicas` replicas have them; fewer within the timeout
 * rejects with NOREPLICAS (a transient reply: the writes are on the master, maybe on no replica).
 */
export async function execReplicated(
  pipeline: ChainableCommander,
  durability: Durability,
): Promise<unknown> {
  const results = await pipeline.call('WAIT', durability.replicas, durability.timeoutMs).exec();
  if (results === null) throw new Error('pipeline discarded');
  for (const [error] of results) if (error !== null) throw error;
  const acked = results.at(-1)?.[1];
  if (typeof acked !== 'number' || acked < durability.replicas) {
    throw notReplicated(acked, durability);
  }
  return results[0]?.[1];
}
