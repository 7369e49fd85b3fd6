// A redis-server of the test file's own (never the shared one), for tests that stop, pause or
// reconfigure Redis under an API, or measure it: a sale seeded on it, and an in-process API in
// front of it or a child `fsale serve` given its env.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer, type LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import type { AppOptions } from '../../src/server/app.js';
import { seedProduct, type SeedInput } from '../../src/sale/seed.js';
import { startApi, type RunningApi } from './sale.js';
import type { TestServices } from './services.js';

export interface PrivateRedis {
  server: LocalService;
  /** A persistent client of the test's own on the private server. */
  admin: Redis;
  /** What a child `fsale` process needs to use this server (the test file's env otherwise). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** A private redis-server with `sale` seeded on it (and in the test file's database). */
export async function startPrivateRedis(
  s: TestServices,
  tag: string,
  sale: SeedInput,
): Promise<PrivateRedis> {
  const dataDir = await mkdtemp(join(tmpdir(), `fsale-${tag}-`));
  const server = await startRedisServer({ dataDir });
  const admin = await connectRedis(server.url, { persistent: true });
  await seedProduct({ pool: s.pool, redis: admin, keyPrefix: s.keyPrefix }, sale);
  return {
    server,
    admin,
    env: { ...s.env, REDIS_URL: server.url },
    async stop() {
      // A test that paused the server must not leave it paused for its own shutdown.
      process.kill(server.pid, 'SIGCONT');
      admin.disconnect();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface PrivateRedisSale extends PrivateRedis {
  api: RunningApi;
}

/** A private redis-server with `sale` seeded on it and an in-process API in front of it. */
export async function startPrivateRedisSale(
  s: TestServices,
  tag: string,
  sale: SeedInput,
  apiOptions: Partial<AppOptions> = {},
): Promise<PrivateRedisSale> {
  const redis = await startPrivateRedis(s, tag, sale);
  const api = await startApi(s, { ...apiOptions, redisUrl: redis.server.url });
  return { ...redis, api };
}

/** The value of `field` in INFO `section`, undefined when Redis does not list it. */
async function infoField(
  redis: Redis,
  section: string,
  field: string,
): Promise<string | undefined> {
  const line = (await redis.info(section)).split('\r\n').find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1);
}

/** INFO memory used_memory: the bytes Redis has allocated (data, buffers, scripts). */
export async function usedMemory(redis: Redis): Promise<number> {
  const value = await infoField(redis, 'memory', 'used_memory');
  if (value === undefined) throw new Error('INFO memory has no used_memory');
  return Number(value);
}

/** How many times the server ran `command` (INFO commandstats; 0 when never). */
export async function commandCalls(redis: Redis, command: string): Promise<number> {
  const value = await infoField(redis, 'commandstats', `cmdstat_${command.toLowerCase()}`);
  return Number(/^calls=(\d+)/.exec(value ?? '')?.[1] ?? 0);
}
