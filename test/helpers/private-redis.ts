// A redis-server of the test file's own (never the shared one), for tests that stop, pause or
// reconfigure Redis under an API: a sale seeded on it and an in-process API in front of it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer, type LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import { seedProduct, type SeedInput } from '../../src/sale/seed.js';
import { startApi, type RunningApi } from './sale.js';
import type { TestServices } from './services.js';

export interface PrivateRedisSale {
  server: LocalService;
  /** A persistent client of the test's own on the private server. */
  admin: Redis;
  api: RunningApi;
  stop(): Promise<void>;
}

export async function startPrivateRedisSale(
  s: TestServices,
  tag: string,
  sale: SeedInput,
): Promise<PrivateRedisSale> {
  const dataDir = await mkdtemp(join(tmpdir(), `fsale-${tag}-`));
  const server = await startRedisServer({ dataDir });
  const admin = await connectRedis(server.url, { persistent: true });
  await seedProduct({ pool: s.pool, redis: admin, keyPrefix: s.keyPrefix }, sale);
  const api = await startApi(s, { redisUrl: server.url });
  return {
    server,
    admin,
    api,
    async stop() {
      // A test that paused the server must not leave it paused for its own shutdown.
      process.kill(server.pid, 'SIGCONT');
      admin.disconnect();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
