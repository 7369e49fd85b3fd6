import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import { seedProduct } from '../../src/sale/seed.js';
import { buy, freshKey, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// A failover leaves the API talking to a Redis that became a read-only replica: every buy is
// refused by Redis (READONLY) and must be answered 503 + Retry-After (retry later), never 500,
// and must change nothing; once the node is a primary again, buys go through.

let s: TestServices;
let dataDir: string;
let server: LocalService;
let admin: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  dataDir = await mkdtemp(join(tmpdir(), 'fsale-readonly-'));
  server = await startRedisServer({ dataDir });
  admin = await connectRedis(server.url);
  const ctx = { pool: s.pool, redis: admin, keyPrefix: s.keyPrefix };
  await seedProduct(ctx, { productId: 'ro1', stock: 10 });
  api = await startApi(s, { redisUrl: server.url });
});

afterAll(async () => {
  admin.disconnect();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('a buy while Redis is a read-only replica', () => {
  it('answers 503 with Retry-After and changes nothing, then buys once Redis is a primary again', async () => {
    // A replica of a primary that does not exist keeps its data and refuses writes.
    await admin.replicaof('127.0.0.1', '1');
    const token = tokenFor('ro-user');
    const key = freshKey();
    const refused = await buy(api, { token, productId: 'ro1', key });
    expect(refused.status, refused.body).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body)).toMatchObject({ type: 'urn:fsale:problem:unavailable' });
    expect(await admin.get(`${s.keyPrefix}:{p:ro1}:stock`)).toBe('10');

    await admin.replicaof('NO', 'ONE');
    const retried = await buy(api, { token, productId: 'ro1', key });
    expect(retried.status, retried.body).toBe(202);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(await admin.get(`${s.keyPrefix}:{p:ro1}:stock`)).toBe('9');
  });
});
