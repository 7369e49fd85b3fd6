import { Redis } from 'ioredis';
import { ServiceUnavailableError } from '../domain/errors.js';
import { reconnectDelayMs } from './resp.js';
import { defineScripts } from './scripts.js';

export type { Redis };

export interface RedisOptions {
  /** Shown in CLIENT LIST, so an operator can tell fsale's connections apart. */
  name?: string;
  /** Keep reconnecting forever (servers and workers) instead of failing the first command. */
  persistent?: boolean;
  /** Send the commands issued in one event-loop tick in one write (ioredis auto-pipelining). */
  autoPipelining?: boolean;
}

/**
 * A connected client with fsale's scripts defined. Commands never queue while disconnected:
 * a request during a Redis outage fails at once (the API answers 503) instead of piling up.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    connectionName: options.name ?? 'fsale',
    enableAutoPipelining: options.autoPipelining === true,
    retryStrategy: options.persistent === true ? reconnectDelayMs : () => null,
  });
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

/** Deletes every key matching `pattern`, in batches, without blocking Redis (SCAN, not KEYS). */
export async function deleteMatching(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
