import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { seedProduct } from '../../src/sale/seed.js';
import { buy, freshKey, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// Redis stops answering while a buy's script is on the wire (a stopped process, a path that
// drops packets): the API gives up on the connection after its stall bound. The script may
// still run when Redis wakes up, so the answer must not read as "nothing happened": it is a
// 503 that says the buy may have been accepted, and a retry with the same key gets the truth.

let s: TestServices;
let dataDir: string;
let server: LocalService;
let admin: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  dataDir = await mkdtemp(join(tmpdir(), 'fsale-stall-'));
  server = await startRedisServer({ dataDir });
  admin = await connectRedis(server.url, { persistent: true });
  await seedProduct(
    { pool: s.pool, redis: admin, keyPrefix: s.keyPrefix },
    { productId: 'st1', stock: 10 },
  );
  api = await startApi(s, { redisUrl: server.url });
});

afterAll(async () => {
  process.kill(server.pid, 'SIGCONT');
  admin.disconnect();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('a buy whose Redis stops answering', () => {
  it('answers 503 outcome_unknown ("may have been accepted"); the retry with the same key gets the one order', async () => {
    const token = tokenFor('stalled');
    const key = freshKey();
    process.kill(server.pid, 'SIGSTOP');
    let stalled;
    try {
      stalled = await buy(api, { token, productId: 'st1', key });
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
    expect(stalled.status, stalled.body).toBe(503);
    expect(stalled.headers['retry-after']).toBe('1');
    expect(JSON.parse(stalled.body)).toMatchObject({
      type: 'urn:fsale:problem:outcome_unknown',
      detail: expect.stringContaining('may have been accepted') as unknown,
    });

    // Once Redis answers again, the same key gets a 202, and the key holds one order only.
    let retry;
    await until('Redis to answer the buy path again', async () => {
      retry = await buy(api, { token, productId: 'st1', key });
      return retry.status === 202;
    });
    const orders = await admin.xrange(productKeys(s.keyPrefix, 'st1').orders, '-', '+');
    expect(orders).toHaveLength(1);
    expect(await admin.get(productKeys(s.keyPrefix, 'st1').stock)).toBe('9');
  });
});
