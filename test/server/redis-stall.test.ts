import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { startPrivateRedisSale, type PrivateRedisSale } from '../helpers/private-redis.js';
import { buy, freshKey, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// Redis stops answering while a buy's script is on the wire (a stopped process, a path that
// drops packets): the API gives up on the connection after its stall bound. The script may
// still run when Redis wakes up, so the answer must not read as "nothing happened": it is a
// 503 that says the buy may have been accepted, and a retry with the same key gets the truth.

let s: TestServices;
let sale: PrivateRedisSale;
let server: PrivateRedisSale['server'];
let admin: Redis;
let api: RunningApi;

beforeAll(async () => {
  s = await useTestServices();
  sale = await startPrivateRedisSale(s, 'stall', { productId: 'st1', stock: 10 });
  ({ server, admin, api } = sale);
});

afterAll(() => sale.stop());

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
