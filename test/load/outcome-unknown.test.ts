import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { productKeys } from '../../src/redis/keys.js';
import { ERROR_CLASSES, OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import type { FloodSummary } from '../../src/load/summary.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { buy, tokenFor } from '../helpers/sale.js';
import {
  NO_LOAD_SHEDDING,
  startApiProcess,
  stopProcess,
  type ApiProcess,
} from '../helpers/stack.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// Issue 14, item 9, the flood's side: the buy-path Redis of a real `fsale serve` stops answering
// in the middle of a real `fsale flood` (the redis-server SIGSTOPped, as in
// test/server/redis-stall.test.ts). The buys on the wire when it stopped are answered 503
// outcome_unknown ("may have been accepted"); the flood must count them apart from the other
// 503s, and a retry of each purchase with its key must settle it: one order per key.

const PRODUCT = 'stall-flood';
const REQUESTS = 400;
const USER_PREFIX = 'fl-';
/** Reserved before the stall: the flood is under way, with most of its arrivals still ahead. */
const BEFORE_STALL = 20;

let s: TestServices;
let redis: PrivateRedis;
let serve: ApiProcess;
let admin: string;

beforeAll(async () => {
  s = await useTestServices();
  redis = await startPrivateRedis(s, 'flood-stall', { productId: PRODUCT, stock: 10_000 });
  // Load shedding would answer 503 overloaded for a reason of its own, not the stall.
  serve = await startApiProcess(redis.env, ['--admin-port', '0', ...NO_LOAD_SHEDDING]);
  admin = await serve.waitFor(/admin \(metrics, readiness\) on (http:\/\/\S+)/);
});

afterAll(async () => {
  await stopProcess(serve);
  await redis.stop();
});

/** fsale_<name>{<label>} summed over label values matching `match`, from the admin /metrics. */
async function counter(name: string, match: RegExp): Promise<number> {
  const { body } = await send(admin, { path: '/metrics' });
  let sum = 0;
  for (const [, labels = '', value] of body.matchAll(
    new RegExp(`^${name}\\{(.*)\\} (\\S+)$`, 'gm'),
  ))
    if (match.test(labels)) sum += Number(value);
  return sum;
}

describe('fsale flood while the API loses its Redis mid-run', () => {
  it('counts the 503 outcome_unknown answers apart from the other 503s, as the API counted them; a retry of every purchase with its key leaves one order per key', async () => {
    const keys = productKeys(s.keyPrefix, PRODUCT);
    const flood = runCli(
      [
        'flood',
        '--url',
        serve.url,
        '--product',
        PRODUCT,
        '--rate',
        '50',
        '--requests',
        String(REQUESTS),
        '--users',
        String(REQUESTS),
        '--user-prefix',
        USER_PREFIX,
        '--timeout',
        '30s',
        '--no-audit',
        '--threshold',
        'errors=0',
        '--quiet',
        '--json',
        // What is measured here is the answers, not the generator's timing on a busy machine.
        '--max-send-lag',
        '2s',
      ],
      redis.env,
    );

    await until('the flood to be under way', async () => {
      return (await redis.admin.xlen(keys.orders)) >= BEFORE_STALL;
    });
    // A buy of the test's own, sent after the stop: once it is answered (the API gives up on
    // the connection after its stall bound), so were the flood's buys on the wire with it.
    process.kill(redis.server.pid, 'SIGSTOP');
    let probe;
    try {
      probe = await buy(serve, { token: tokenFor('probe'), productId: PRODUCT, key: 'probe' });
    } finally {
      process.kill(redis.server.pid, 'SIGCONT');
    }
    expect(probe.status, probe.body).toBe(503);
    expect(JSON.parse(probe.body)).toMatchObject({ type: 'urn:fsale:problem:outcome_unknown' });

    const result = await flood;
    const summary = JSON.parse(result.stdout) as FloodSummary;
    const count = (c: (typeof OUTCOME_CLASSES)[number]) => summary.outcomes[c].count;
    expect(summary.requests.sent).toBe(REQUESTS);
    expect(OUTCOME_CLASSES.reduce((n, c) => n + count(c), 0)).toBe(REQUESTS);

    // The flood's classes are the API's answers: outcome_unknown as the API counted it (the
    // probe aside), every other 503 as overloaded, accepted as accepted.
    const apiUnknown = await counter('fsale_buy_outcomes_total', /outcome="outcome_unknown"/);
    const api503 = await counter(
      'fsale_http_requests_total',
      /route="\/order\/buy".*status="503"|status="503".*route="\/order\/buy"/,
    );
    expect(count('outcome_unknown')).toBeGreaterThan(0);
    expect(count('outcome_unknown')).toBe(apiUnknown - 1);
    expect(count('overloaded')).toBe(api503 - apiUnknown);
    expect(count('accepted')).toBe(await counter('fsale_buy_outcomes_total', /"accepted"/));
    // An unknown outcome is an error (the flood cannot say the buy failed), load shedding is not.
    expect(summary.thresholds).toEqual([
      expect.objectContaining({
        expression: 'errors=0',
        ok: false,
        actual: OUTCOME_CLASSES.filter((c) => ERROR_CLASSES.includes(c)).reduce(
          (n, c) => n + count(c),
          0,
        ),
      }),
    ]);

    // "May have been accepted": the reserved units are every accept and at most every unknown.
    const reserved = await redis.admin.xlen(keys.orders);
    expect(reserved).toBeGreaterThanOrEqual(count('accepted'));
    expect(reserved).toBeLessThanOrEqual(count('accepted') + count('outcome_unknown') + 1);

    // Each purchase k was user <prefix>k with key flood-<run>-k: retried with its key, a
    // reserved one answers its order again and the others are bought now, once.
    const entries = await redis.admin.xrange(keys.orders, '-', '+');
    const run = /^(flood-[0-9a-f]+-)\d+$/.exec(
      entries.map(([, f]) => f[f.indexOf('key') + 1]).find((k) => k?.startsWith('flood-')) ?? '',
    )?.[1];
    expect(run).toBeDefined();
    const purchases = [
      ...Array.from({ length: REQUESTS }, (_, k) => ({
        user: `${USER_PREFIX}${k}`,
        key: `${run}${k}`,
      })),
      { user: 'probe', key: 'probe' },
    ];
    let replayed = 0;
    for (let i = 0; i < purchases.length; i += 50) {
      const retries = await Promise.all(
        purchases
          .slice(i, i + 50)
          .map(({ user, key }) => buy(serve, { token: tokenFor(user), productId: PRODUCT, key })),
      );
      for (const r of retries) {
        expect(r.status, r.body).toBe(202);
        if (r.headers['idempotent-replayed'] === 'true') replayed += 1;
      }
    }
    console.info(
      `flood: ${count('accepted')} accepted, ${count('outcome_unknown')} outcome_unknown, ${count('overloaded')} other 503; ${reserved} reserved, ${replayed} replayed on retry`,
    );
    expect(replayed).toBe(reserved);
    const orders = await redis.admin.xrange(keys.orders, '-', '+');
    const orderKeys = orders.map(([, f]) => f[f.indexOf('key') + 1]);
    expect(orderKeys).toHaveLength(purchases.length);
    expect(new Set(orderKeys).size).toBe(purchases.length);
  });
});
