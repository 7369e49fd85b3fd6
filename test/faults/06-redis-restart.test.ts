// Scenario 6 — Redis restarted mid-sale. A private redis-server (never the shared one) is
// killed with SIGKILL while buyers keep coming: the API must answer 503 problem+json with
// Retry-After while it is down (never 500, never 202), and recover by itself when it is back.
//
// Part 1 runs Redis with AOF and `appendfsync everysec` (what `fsale up` and the compose file
// run): Redis write(2)s the AOF before it sends the reply, so a SIGKILL of the process loses
// nothing it acknowledged; fsync (`always`) only adds protection against a machine crash, which
// a process kill does not simulate, at a large cost per write. So every 202 must survive. (Not
// on a disk so slow that the previous second's fsync is still running: Redis then postpones
// the write for up to 2 s and replies first; see README, Durability.)
//
// Part 2 runs Redis without persistence: the restart loses everything, and
// `fsale reconcile --rebuild-redis` (run while the API is stopped, as its help requires) must
// restore stock, per-user counts and the sold-out state from PostgreSQL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { startRedisServer, type LocalService } from '../../src/infra/local-services.js';
import { connectRedis, type Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { seedProduct } from '../../src/sale/seed.js';
import { HOLDING_STATUSES } from '../../src/domain/order-status.js';
import { runCli } from '../helpers/cli.js';
import { send, type HttpResponse } from '../helpers/http.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { freshKey } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { expectAuditPasses } from '../helpers/audit.js';
import { sleep, until } from '../helpers/wait.js';
import { startApiProcess, stopProcess, type ApiProcess } from '../helpers/stack.js';

interface PrivateRedis {
  server: LocalService;
  dataDir: string;
  /** A client that reconnects by itself across restarts. */
  client: Redis;
}

async function startPrivateRedis(appendOnly: boolean): Promise<PrivateRedis> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fsale-f06-'));
  const server = await startRedisServer({ dataDir, appendOnly });
  const client = await connectRedis(server.url, { persistent: true });
  return { server, dataDir, client };
}

/** SIGKILL, then wait (bounded) until the process is gone and its port refuses connections. */
async function killRedis(redis: PrivateRedis): Promise<void> {
  process.kill(redis.server.pid, 'SIGKILL');
  await until(
    `redis-server ${redis.server.pid} to die after SIGKILL`,
    () => {
      try {
        process.kill(redis.server.pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    30_000,
    50,
  );
}

async function restartRedis(redis: PrivateRedis, appendOnly: boolean): Promise<void> {
  redis.server = await startRedisServer({
    dataDir: redis.dataDir,
    port: redis.server.port,
    appendOnly,
  });
  await until(
    'the test client to reconnect to the restarted Redis',
    async () => {
      await redis.client.ping(); // throws until reconnected
      return true;
    },
    60_000,
  );
}

function buyRequest(url: string, token: string, productId: string): Promise<HttpResponse> {
  return send(url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${token}`, 'idempotency-key': freshKey() },
    body: { productId, qty: 1 },
  });
}

const orderIdOf = (r: HttpResponse) => (JSON.parse(r.body) as { orderId: string }).orderId;

/** A sale's processes on one Redis: gateway, API, order worker, payment worker. */
interface Stack {
  env: Record<string, string>;
  gateway: CliProcess;
  gatewayUrl: string;
  api?: ApiProcess;
  orders?: CliProcess;
  payments?: CliProcess;
}

async function startStack(s: TestServices, redisUrl: string): Promise<Stack> {
  const gateway = startCli(['gateway', '--port', '0', '--seed', '6', '--speed', '100'], s.env);
  const gatewayUrl = await gateway.waitFor(/listening on (http:\/\/[\d.:]+)/);
  const env = { ...s.env, REDIS_URL: redisUrl, FSALE_GATEWAY_URL: gatewayUrl };
  return { env, gateway, gatewayUrl };
}

const startApi = (stack: Stack) =>
  startApiProcess(stack.env, ['--rate-limit', '0', '--max-event-loop-delay', '10m']);
// Each resolves once the worker is connected (its first JSON line): a worker that cannot reach
// Redis at start exits 2 by design, so the kill must come after that.
async function startOrders(stack: Stack): Promise<CliProcess> {
  const worker = startCli(['work', 'orders'], stack.env);
  await worker.waitFor(/"event":"started"/);
  return worker;
}
async function startPayments(stack: Stack): Promise<CliProcess> {
  const worker = startCli(
    ['work', 'payments', '--timeout', '1s', '--max-backoff', '200ms', '--status-interval', '200ms'],
    stack.env,
  );
  await worker.waitFor(/"event":"started"/);
  return worker;
}

async function stopStack(stack: Stack): Promise<void> {
  for (const p of [stack.api, stack.orders, stack.payments, stack.gateway]) {
    if (p !== undefined) await stopProcess(p);
  }
}

/** Waits until every accepted order is in PG and none is pending, then settles the unknowns. */
async function drainAndReconcile(s: TestServices, stack: Stack, accepted: string[]) {
  await until(
    `all ${accepted.length} accepted orders to reach PostgreSQL`,
    async () => {
      const { rows } = await s.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])',
        [accepted],
      );
      return rows[0]?.n === accepted.length;
    },
    120_000,
  );
  await until(
    'every order to leave pending',
    async () => {
      const { rows } = await s.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM orders WHERE status = 'pending'",
      );
      return rows[0]?.n === 0;
    },
    120_000,
  ).catch(async (error: unknown) => {
    const { rows } = await s.pool.query(
      `SELECT id, payment_attempts, payment_lease_until, persisted_at FROM orders
        WHERE status = 'pending' LIMIT 5`,
    );
    const tail = (p: CliProcess | undefined) =>
      `exit ${String(p?.child.exitCode)}: ${p?.output().slice(-1500) ?? ''}`;
    throw new Error(
      `${String(error)}\npending: ${JSON.stringify(rows)}\npayments ${tail(stack.payments)}`,
    );
  });
  const reconcile = await runCli(['reconcile', '--once', '--json'], stack.env);
  expect(reconcile.code, reconcile.stderr).toBe(0);
  const { rows } = await s.pool.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM orders GROUP BY status',
  );
  const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
  expect(byStatus.pending ?? 0).toBe(0);
  expect(byStatus.needs_reconciliation ?? 0).toBe(0);
  return byStatus;
}

/**
 * This describe block's services, a private redis-server (AOF on or off) and the stack on it,
 * all stopped and removed after the block.
 */
function usePrivateRedisStack(appendOnly: boolean) {
  const held = {} as { s: TestServices; redis: PrivateRedis; stack: Stack };
  beforeAll(async () => {
    held.s = await useTestServices();
    held.redis = await startPrivateRedis(appendOnly);
    held.stack = await startStack(held.s, held.redis.server.url);
    return async () => {
      await stopStack(held.stack);
      held.redis.client.disconnect();
      await held.redis.server.stop();
      await rm(held.redis.dataDir, { recursive: true, force: true });
    };
  });
  return held;
}

describe('scenario 6a: Redis with AOF SIGKILLed mid-sale and started again', () => {
  const env = usePrivateRedisStack(true);

  it('answers 503 while Redis is down, recovers, and loses no accepted order', async () => {
    const { s, redis, stack } = env;
    await seedProduct(
      { pool: s.pool, redis: redis.client, keyPrefix: s.keyPrefix },
      { productId: 'r6', stock: 600, perUserLimit: 1, priceCents: 900 },
    );
    stack.api = await startApi(stack);
    stack.orders = await startOrders(stack);
    stack.payments = await startPayments(stack);
    const api = stack.api;
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 2000 }, (_, i) => `r6u${i}`),
      900,
    );
    let nextUser = 0;
    const nextToken = () => tokens[nextUser++] ?? '';
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    const record = (r: HttpResponse) => {
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 202) accepted.push(orderIdOf(r));
    };

    // Before: a normal sale.
    const before = await Promise.all(
      Array.from({ length: 200 }, () => buyRequest(api.url, nextToken(), 'r6')),
    );
    before.forEach(record);
    expect(before.filter((r) => r.status === 202)).toHaveLength(200);

    // A steady trickle of buyers keeps coming through the kill and the restart.
    const trickling = { on: true };
    const trickle = (async () => {
      const answers: HttpResponse[] = [];
      while (trickling.on) {
        const batch = await Promise.all(
          Array.from({ length: 5 }, () => buyRequest(api.url, nextToken(), 'r6')),
        );
        answers.push(...batch);
        await sleep(20);
      }
      return answers;
    })();
    await sleep(300);
    await killRedis(redis);

    // While it is down: readiness says so, and every buy is a 503 problem with Retry-After.
    await until(
      '/readyz to answer 503 with Redis down',
      async () => (await send(api.url, { path: '/readyz' })).status === 503,
      30_000,
    );
    const down = await Promise.all(
      Array.from({ length: 100 }, () => buyRequest(api.url, nextToken(), 'r6')),
    );
    for (const r of down) {
      expect(r.status, r.body).toBe(503);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    down.forEach(record);
    // The API process itself never went away.
    expect(api.child.exitCode).toBeNull();

    await restartRedis(redis, true);
    await until(
      '/readyz to answer 200 once Redis is back',
      async () => (await send(api.url, { path: '/readyz' })).status === 200,
      60_000,
    );
    trickling.on = false;
    (await trickle).forEach(record);

    // After: buys are accepted again, from the stock the AOF kept.
    const after = await Promise.all(
      Array.from({ length: 100 }, () => buyRequest(api.url, nextToken(), 'r6')),
    );
    after.forEach(record);
    expect(after.filter((r) => r.status === 202).length).toBeGreaterThan(0);

    // Never a 500, never anything but accepted, sold out/limit, or unavailable.
    const seen = Object.fromEntries(statuses);
    console.log(`scenario 6a: statuses ${JSON.stringify(seen)}`);
    for (const status of statuses.keys())
      expect([202, 409, 503], JSON.stringify(seen)).toContain(status);
    expect(statuses.get(500)).toBeUndefined();

    // Every 202 is an order in PostgreSQL, settled once reconcile has run.
    const byStatus = await drainAndReconcile(s, stack, accepted);
    const { rows } = await s.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    // Orders can exceed the 202s: a buy whose reply was cut by the kill may still have reserved.
    expect(rows[0]?.n).toBeGreaterThanOrEqual(accepted.length);
    console.log(`scenario 6a: ${accepted.length} accepted, orders ${JSON.stringify(byStatus)}`);
    await expectAuditPasses({ ...s, redis: redis.client, gatewayUrl: stack.gatewayUrl });
  });
});

describe('scenario 6b: Redis without persistence loses everything; rebuild-redis restores it', () => {
  const env = usePrivateRedisStack(false);

  it('rebuilds stock, per-user counts and sold-out state; a further sale cannot oversell', async () => {
    const { s, redis, stack } = env;
    const ctx = { pool: s.pool, redis: redis.client, keyPrefix: s.keyPrefix };
    await seedProduct(ctx, { productId: 'r6b', stock: 80, perUserLimit: 2, priceCents: 700 });
    await seedProduct(ctx, { productId: 'r6gone', stock: 10, perUserLimit: 5, priceCents: 700 });
    stack.api = await startApi(stack);
    stack.orders = await startOrders(stack);
    stack.payments = await startPayments(stack);
    const api = stack.api;

    // 30 users buy 2 units each of r6b (60 of 80), 10 more buy 1 each; r6gone sells out.
    const users = Array.from({ length: 40 }, (_, i) => `r6b${i}`);
    const tokens = new Map(users.map((u) => [u, mintTokens(TEST_JWT_SECRET, [u], 900)[0] ?? '']));
    const token = (u: string) => tokens.get(u) ?? '';
    const accepted: string[] = [];
    const sale = await Promise.all(
      users.flatMap((u, i) =>
        (i < 30 ? [0, 1] : [0]).map(() => buyRequest(api.url, token(u), 'r6b')),
      ),
    );
    const gone = await Promise.all(
      users.slice(0, 12).map((u) => buyRequest(api.url, token(u), 'r6gone')),
    );
    for (const r of [...sale, ...gone]) {
      expect([202, 409], r.body).toContain(r.status);
      if (r.status === 202) accepted.push(orderIdOf(r));
    }
    expect(sale.filter((r) => r.status === 202)).toHaveLength(70);
    // A decline may give a unit of r6gone back while the crowd is still buying.
    expect(gone.filter((r) => r.status === 202).length).toBeGreaterThanOrEqual(10);
    await drainAndReconcile(s, stack, accepted);

    // What Redis says now is what the rebuild must reproduce.
    const expected = await pgView(s, ['r6b', 'r6gone']);
    for (const productId of ['r6b', 'r6gone']) {
      const keys = productKeys(s.keyPrefix, productId);
      expect(Number(await redis.client.get(keys.stock))).toBe(expected[productId]?.remaining);
    }

    // The API must be stopped for the rebuild; the workers too, so nothing moves meanwhile.
    await stopProcess(api);
    await stopProcess(stack.orders);
    await stopProcess(stack.payments);
    await killRedis(redis);
    await restartRedis(redis, false);
    expect(await redis.client.dbsize()).toBe(0); // really lost: no AOF, no RDB

    const rebuild = await runCli(['reconcile', '--rebuild-redis', '--json'], stack.env);
    expect(rebuild.code, rebuild.stderr + rebuild.stdout).toBe(0);

    for (const productId of ['r6b', 'r6gone']) {
      const keys = productKeys(s.keyPrefix, productId);
      const view = expected[productId];
      expect(Number(await redis.client.get(keys.stock)), productId).toBe(view?.remaining);
      const bought = await redis.client.hgetall(keys.bought);
      expect(
        Object.fromEntries(Object.entries(bought).map(([u, n]) => [u, Number(n)])),
        productId,
      ).toEqual(view?.bought);
    }
    const remainingB = expected.r6b?.remaining ?? -1;
    const goneLeft = expected.r6gone?.remaining ?? -1;
    expect(remainingB).toBeGreaterThan(0);

    // A further sale, on a fresh API: no payments run, so nothing is released meanwhile and
    // the counts are exact.
    stack.api = await startApi(stack);
    stack.orders = await startOrders(stack);
    const api2 = stack.api;
    const more: string[] = [];
    // Users at their limit are refused; those with one unit get exactly one more.
    for (const u of users) {
      const held = expected.r6b?.bought[u] ?? 0;
      const r = await buyRequest(api2.url, token(u), 'r6b');
      if (held >= 2) {
        expect(r.status, `${u} holds ${held}: ${r.body}`).toBe(409);
        expect(r.body).toContain('limit_reached');
      } else if (r.status === 202) more.push(orderIdOf(r));
    }
    // The sold-out product stays sold out, unless declines gave units back.
    const goneTry = await buyRequest(api2.url, token('r6b39'), 'r6gone');
    if (goneLeft === 0) {
      expect(goneTry.status).toBe(409);
      expect(goneTry.body).toContain('sold_out');
    } else expect(goneTry.status).toBe(202);
    if (goneTry.status === 202) more.push(orderIdOf(goneTry));

    // Fresh buyers take what is left of r6b, and not one unit more.
    const crowd = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 200 }, (_, i) => `r6late${i}`),
      900,
    );
    const rush = await Promise.all(crowd.map((t) => buyRequest(api2.url, t, 'r6b')));
    for (const r of rush) {
      expect([202, 409], r.body).toContain(r.status);
      if (r.status === 202) more.push(orderIdOf(r));
    }
    const newUnitsB = more.length - (goneTry.status === 202 ? 1 : 0);
    expect(newUnitsB).toBe(remainingB);
    expect(rush.filter((r) => r.status === 409).every((r) => r.body.includes('sold_out'))).toBe(
      true,
    );

    stack.payments = await startPayments(stack);
    await drainAndReconcile(s, stack, [...accepted, ...more]);
    const { rows } = await s.pool.query<{ units: number; total: number }>(
      `SELECT coalesce(sum(o.qty) FILTER (WHERE o.status = ANY($1::text[])), 0)::int AS units,
              p.stock_total AS total
         FROM products p LEFT JOIN orders o ON o.product_id = p.id
        WHERE p.id = 'r6b' GROUP BY p.stock_total`,
      [HOLDING_STATUSES],
    );
    expect(rows[0]?.units).toBeLessThanOrEqual(rows[0]?.total ?? 0);
    await expectAuditPasses({ ...s, redis: redis.client, gatewayUrl: stack.gatewayUrl });
  });
});

/** Per product: PG remaining and the units each user holds (what Redis must say). */
async function pgView(s: TestServices, products: string[]) {
  const view: Record<string, { remaining: number; bought: Record<string, number> }> = {};
  for (const productId of products) {
    const product = await s.pool.query<{ remaining: number }>(
      'SELECT remaining FROM products WHERE id = $1',
      [productId],
    );
    const holds = await s.pool.query<{ user_id: string; qty: number }>(
      `SELECT user_id, sum(qty)::int AS qty FROM orders
        WHERE product_id = $1 AND status = ANY($2::text[]) GROUP BY user_id`,
      [productId, HOLDING_STATUSES],
    );
    view[productId] = {
      remaining: product.rows[0]?.remaining ?? -1,
      bought: Object.fromEntries(holds.rows.map((h) => [h.user_id, h.qty])),
    };
  }
  return view;
}
