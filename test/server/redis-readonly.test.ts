import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from '../../src/redis/client.js';
import { startPrivateRedisSale, type PrivateRedisSale } from '../helpers/private-redis.js';
import { buy, freshKey, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// A failover leaves the API talking to a Redis that became a read-only replica: every buy is
// refused by Redis (READONLY) and must be answered 503 + Retry-After (retry later), never 500,
// and must change nothing; once the node is a primary again, buys go through.

let s: TestServices;
let sale: PrivateRedisSale;
let admin: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  sale = await startPrivateRedisSale(s, 'readonly', { productId: 'ro1', stock: 10 });
  ({ admin, api } = sale);
});

afterAll(() => sale.stop());

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
