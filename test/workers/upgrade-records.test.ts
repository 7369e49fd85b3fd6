import { beforeAll, describe, expect, it } from 'vitest';
import { idempotencyKey, productKeys } from '../../src/redis/keys.js';
import { BuyCode, fingerprint } from '../../src/sale/buy.js';
import { rebuildRedis } from '../../src/workers/reconcile.js';
import { buy, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// Versions before issue 14 stored every final answer under its key for 24 h, rejections
// included. After an upgrade mid-sale those records are still in Redis: an accept's expires
// (its retry would become a new attempt) and a rejection's replays the rejection. `reconcile
// --rebuild-redis` (the API stopped) turns them into what this version writes.

const DAY_SECONDS = 24 * 3600;

describe('reconcile --rebuild-redis after an upgrade from a version that recorded rejections', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
  });

  it("drops the old rejection records and keeps every accept's record, without expiry", async () => {
    await seed(s, { productId: 'upg', stock: 5 });
    const keys = productKeys(s.keyPrefix, 'upg');
    const first = await buy(api, { token: tokenFor('alice'), productId: 'upg', key: 'a1' });
    expect(first.status).toBe(202);
    // What the old version left behind: the accept's record with its 24 h TTL, and a
    // sold_out recorded for bob's key when the product was out for a moment.
    const accepted = idempotencyKey(keys, 'alice', 'a1');
    await s.redis.expire(accepted, DAY_SECONDS);
    const rejected = idempotencyKey(keys, 'bob', 'b1');
    await s.redis.set(rejected, `${BuyCode.SoldOut}||${fingerprint('upg', 1)}`, 'EX', DAY_SECONDS);
    const bob = { token: tokenFor('bob'), productId: 'upg', key: 'b1' };
    expect((await buy(api, bob)).status, 'the old record still answers').toBe(409);

    const acceptedRecord = await s.redis.get(accepted);
    await rebuildRedis(s);

    expect(await s.redis.get(rejected)).toBeNull();
    expect(await s.redis.get(accepted)).toBe(acceptedRecord);
    expect(await s.redis.ttl(accepted)).toBe(-1);
    const retry = await buy(api, { token: tokenFor('alice'), productId: 'upg', key: 'a1' });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toBe(first.body);
    const bobAgain = await buy(api, bob);
    expect(bobAgain.status, bobAgain.body).toBe(202);
    expect(bobAgain.headers['idempotent-replayed']).toBeUndefined();
    expect(await s.redis.get(keys.stock)).toBe('3');
  });
});
