import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { deleteMatching } from '../../src/redis/client.js';
import { productKeyPatterns, productKeys } from '../../src/redis/keys.js';
import { applyReleaseToRedis } from '../../src/sale/release.js';
import { settleFailed } from '../../src/sale/settle.js';
import { runCli } from '../helpers/cli.js';
import { saleNumbers } from '../helpers/invariants.js';
import { fetchLedger as readLedger } from '../../src/audit/ledger.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

async function statusCount(s: TestServices, productId: string, status: string): Promise<number> {
  const { rows } = await s.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM orders WHERE product_id = $1 AND status = $2',
    [productId, status],
  );
  return rows[0]?.n ?? 0;
}

async function buyAll(
  api: RunningApi,
  productId: string,
  users: number,
  tag: string,
): Promise<string[]> {
  const tokens = mintTokens(
    TEST_JWT_SECRET,
    Array.from({ length: users }, (_, i) => `${tag}${i}`),
    600,
  );
  const responses = await Promise.all(
    tokens.map((token) => buy(api, { token, productId, key: freshKey() })),
  );
  return responses
    .filter((r) => r.status === 202)
    .map((r) => (JSON.parse(r.body) as { orderId: string }).orderId);
}

describe('payments and recovery', () => {
  let s: TestServices;
  let api: RunningApi;
  let gateway: CliProcess;
  let env: Record<string, string>;
  let orders: CliProcess;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
    // Speed 1: real latencies (median 650 ms), so charges are in flight when the worker dies.
    gateway = startCli(['gateway', '--port', '0', '--seed', '11', '--speed', '1'], s.env);
    env = { ...s.env, FSALE_GATEWAY_URL: await gateway.waitFor(/listening on (http:\/\/[\d.:]+)/) };
    orders = startCli(['work', 'orders', '--json', '--claim-idle', '2s'], env);
    return async () => {
      orders.child.kill('SIGTERM');
      gateway.child.kill('SIGTERM');
      await Promise.all([orders.exited, gateway.exited]);
    };
  });

  it('a payment worker SIGKILLed with charges in flight: after restart and reconcile, no double charge, no lost order', async () => {
    await seed(s, { productId: 'kill', stock: 300, priceCents: 700 });
    const accepted = await buyAll(api, 'kill', 300, 'k');
    expect(accepted).toHaveLength(300);
    const paymentArgs = [
      'work',
      'payments',
      '--json',
      '--timeout',
      '2500ms',
      '--max-retries',
      '1',
      '--max-backoff',
      '200ms',
      '--concurrency',
      '64',
    ];
    const first = startCli(paymentArgs, env);
    await until(
      'some charges to complete',
      async () => (await statusCount(s, 'kill', 'paid')) >= 30,
    );
    const leased = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM orders WHERE product_id = 'kill' AND status = 'pending' AND payment_lease_until > now()",
    );
    expect(leased.rows[0]?.n).toBeGreaterThan(0); // charges were in flight
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startCli(paymentArgs, env);
    await until(
      'the restarted worker to take over the leases',
      async () => (await statusCount(s, 'kill', 'pending')) === 0,
    );
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect((await runCli(['reconcile', '--once'], env)).code).toBe(0);

    const { rows } = await s.pool.query<{ id: string; status: string }>(
      "SELECT id, status FROM orders WHERE product_id = 'kill'",
    );
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
    expect(new Set(rows.map((r) => r.status))).toEqual(new Set(['paid', 'payment_failed']));
    const ledger = (await readLedger(env.FSALE_GATEWAY_URL ?? '')).filter((c) =>
      accepted.includes(c.key),
    );
    const charged = ledger
      .filter((c) => c.status === 'succeeded')
      .map((c) => c.key)
      .sort();
    expect(charged).toEqual(
      rows
        .filter((r) => r.status === 'paid')
        .map((r) => r.id)
        .sort(),
    );
    const n = await saleNumbers(s, 'kill');
    expect(n.redisStock + n.heldInPg).toBe(300);
  });

  it('a decline releases exactly one unit even when the release runs 5 times at once', async () => {
    await seed(s, { productId: 'once', stock: 10 });
    const [orderId] = await buyAll(api, 'once', 1, 'o');
    await until(
      'the order to be persisted',
      async () => (await statusCount(s, 'once', 'pending')) === 1,
    );
    const order = {
      id: orderId ?? '',
      productId: 'once',
      userId: 'o0',
      qty: 1,
      status: 'pending' as const,
    };
    const ctx = { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix };
    const settled = await Promise.all(
      Array.from({ length: 5 }, () =>
        settleFailed(ctx, order, 'pending', 'test decline', undefined),
      ),
    );
    expect(settled.filter(Boolean)).toHaveLength(1);
    const reservation = { orderId: order.id, productId: 'once', userId: 'o0', qty: 1 };
    const applied = await Promise.all(
      Array.from({ length: 5 }, () =>
        applyReleaseToRedis(s.redis, s.pool, s.keyPrefix, reservation),
      ),
    );
    expect(applied.filter(Boolean)).toHaveLength(0); // the first settleFailed already applied it

    const n = await saleNumbers(s, 'once');
    expect(n.redisStock).toBe(10);
    expect(n.pgRemaining).toBe(10);
    expect(await s.redis.hget(productKeys(s.keyPrefix, 'once').bought, 'o0')).toBeNull();
    const releases = await s.pool.query("SELECT 1 FROM stock_releases WHERE product_id = 'once'");
    expect(releases.rowCount).toBe(1);
  });

  it('after Redis loses the sale mid-sale, reconcile --rebuild-redis restores it and nothing is oversold', async () => {
    await seed(s, { productId: 'lost', stock: 500 });
    const early = await buyAll(api, 'lost', 300, 'l');
    expect(early).toHaveLength(300);
    await until(
      'the early orders to be persisted',
      async () => (await saleNumbers(s, 'lost')).unpersisted === 0,
    );

    await deleteMatching(s.redis, productKeyPatterns(s.keyPrefix, 'lost')[0] ?? '');
    const rebuilt = await runCli(['reconcile', '--rebuild-redis', '--json'], env);
    expect(rebuilt.code).toBe(0);
    const report = JSON.parse(rebuilt.stdout) as { products: { productId: string }[] };
    expect(report.products.find((p) => p.productId === 'lost')).toEqual({
      productId: 'lost',
      stock: 200,
      buyers: 300,
      unpersisted: 0,
      records: 300,
    });

    // Early buyers are still at their limit; a new crowd can only take what is left.
    const again = await buyAll(api, 'lost', 5, 'l');
    expect(again).toHaveLength(0);
    const late = await buyAll(api, 'lost', 400, 'late');
    expect(late).toHaveLength(200);
    await until(
      'the late orders to be persisted',
      async () => (await saleNumbers(s, 'lost')).unpersisted === 0,
    );
    const n = await saleNumbers(s, 'lost');
    expect(n.heldInPg).toBe(500);
    expect(n.redisStock).toBe(0);
    expect(n.pgRemaining).toBe(0);
  });
});
