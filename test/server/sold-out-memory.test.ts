import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanKeys } from '../../src/redis/client.js';
import { productKeys, rateLimitKey } from '../../src/redis/keys.js';
import { BUY_MODES } from '../../src/sale/buy.js';
import { ACCEPTED_STATUS } from '../helpers/buy-modes.js';
import {
  commandCalls,
  startPrivateRedisSale,
  usedMemory,
  type PrivateRedisSale,
} from '../helpers/private-redis.js';
import { buy, freshKey, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// Issue 14, item 3: a rejected buy must not cost Redis memory, or one user with fresh keys
// fills it. Each mode runs on a
// redis-server of its own, so INFO memory counts this sale's writes and nobody else's. The
// rate limiter counts every buy (its counter is one of the keys) but allows all 20,000 in its
// window: at the default 20 per second, what one user sends in 17 minutes.

const BUYS = 20_000;
const BATCH = 200;
const RATE_LIMIT = { rateLimit: BUYS, rateWindowMs: 3_600_000 };
/**
 * The stated bound: 20,000 rejections grow used_memory by less than this. Measured: +53 KB
 * (queue) and -10 KB (sync) here; the code that recorded rejections grew it by 2.2 MB in this
 * test (the 10,000 buys through the script, 222 B each).
 */
const MEMORY_BOUND = 256 * 1024;

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

describe.each(BUY_MODES)('%s mode', (mode) => {
  const productId = `gone-${mode}`;
  let sale: PrivateRedisSale;
  beforeAll(async () => {
    sale = await startPrivateRedisSale(
      s,
      `memory-${mode}`,
      { productId, stock: 1 },
      { mode, buyPolicy: RATE_LIMIT },
    );
  });
  afterAll(() => sale.stop());

  /** Buys that ran the whole buy (the script, or sync mode's rate limit before its transaction). */
  const scriptRuns = async () =>
    (await commandCalls(sale.admin, 'evalsha')) + (await commandCalls(sale.admin, 'eval'));
  const productKeyNames = async () =>
    new Set(await scanKeys(sale.admin, `${s.keyPrefix}:{p:${productId}}:*`));

  it(`one user's ${BUYS.toLocaleString('en')} fresh keys after sell-out, on the fast path and through the buy: Redis grows by under ${MEMORY_BOUND / 1024} KiB and the product gains no key`, async () => {
    const { api, admin } = sale;
    const keys = productKeys(s.keyPrefix, productId);
    const winner = await buy(api, { token: tokenFor('winner'), productId, key: freshKey() });
    expect(winner.status, winner.body).toBe(ACCEPTED_STATUS[mode]);
    await until('the API to see the product sold out', () =>
      api.app.api.soldOut.isSoldOut(productId),
    );

    const token = tokenFor('spammer');
    const before = {
      memory: await usedMemory(admin),
      keys: await productKeyNames(),
      scriptRuns: await scriptRuns(),
    };
    const answers = new Map<string, number>();
    for (let batch = 0; batch < BUYS / BATCH; batch++) {
      if (batch % 2 === 1) {
        // A stock level above 0 re-opens the product in the API's sold-out cache (what a
        // release's publish does); with stock still 0 the next buys run the whole buy and are
        // told sold out there, which closes the cache again. The other batches meet the
        // closed cache: the fast path.
        await admin.publish(keys.stockChannel, '1');
        await until('the product to re-open', () => !api.app.api.soldOut.isSoldOut(productId));
      }
      const replies = await Promise.all(
        Array.from({ length: BATCH }, () => buy(api, { token, productId, key: freshKey() })),
      );
      for (const r of replies) {
        const type = (JSON.parse(r.body) as { type?: string }).type ?? String(r.status);
        answers.set(type, (answers.get(type) ?? 0) + 1);
      }
    }

    expect(Object.fromEntries(answers)).toEqual({ 'urn:fsale:problem:sold_out': BUYS });

    // Both paths ran: each re-opened batch sent at least one buy through the script (one
    // EVALSHA each: the buy script, or sync mode's rate limit); the fast path runs none.
    const throughTheBuy = (await scriptRuns()) - before.scriptRuns;
    expect(throughTheBuy).toBeGreaterThanOrEqual(BUYS / BATCH / 2);
    expect(BUYS - throughTheBuy, 'buys answered on the fast path').toBeGreaterThan(0);

    const grown = (await usedMemory(admin)) - before.memory;
    console.info(
      `${mode}: ${BUYS} rejections (${throughTheBuy} through the buy): used_memory +${grown} B`,
    );
    expect(grown).toBeLessThan(MEMORY_BOUND);
    // No new key for the product but the user's rate-limit counter, which expires with its
    // window.
    const added = [...(await productKeyNames())].filter((k) => !before.keys.has(k));
    const counter = rateLimitKey(keys, 'spammer');
    expect(added).toEqual([counter]);
    expect(await admin.pttl(counter)).toBeGreaterThan(0);
    expect(await admin.pttl(counter)).toBeLessThanOrEqual(RATE_LIMIT.rateWindowMs);
    // A safety net against a hang, not a speed check: 20,000 sync-mode buys on a loaded machine.
  }, 600_000);
});
