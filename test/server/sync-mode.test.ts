// `fsale serve --mode sync` end to end (real processes: API, payment worker, gateway), and
// what keeps Redis right in sync mode: the mirror, its retry, and the repair after a crash
// between COMMIT and mirror.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import type { AuditReport } from '../../src/audit/audit.js';
import { runAudit } from '../../src/audit/audit.js';
import { fetchLedger } from '../../src/audit/ledger.js';
import { connectRedis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { StockMirror } from '../../src/sale/sync-buy.js';
import { rebuildRedis } from '../../src/workers/reconcile.js';
import { runCli } from '../helpers/cli.js';
import { saleNumbers } from '../helpers/invariants.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { buy, freshKey, saleState, seed, startApi, tokenFor } from '../helpers/sale.js';
import {
  ON_CLUSTER,
  TEST_JWT_SECRET,
  useTestServices,
  type TestServices,
} from '../helpers/services.js';
import { startFaultProxy, throughProxy } from '../helpers/fault-proxy.js';
import { connectSse } from '../helpers/sse-client.js';
import { persistedOrders, pgState } from '../helpers/buy-modes.js';
import { until } from '../helpers/wait.js';

const failed = (report: AuditReport) => report.checks.filter((c) => !c.ok).map((c) => c.name);

describe('sync mode', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('a whole sale through `fsale serve --mode sync`: 3,000 buyers for 2,000 units, every order settled once, `fsale audit` all OK', async () => {
    await seed(s, { productId: 'sync-e2e', stock: 2000, priceCents: 1500 });
    const gateway = startCli(['gateway', '--port', '0', '--seed', '11', '--speed', '100'], s.env);
    const gatewayUrl = await gateway.waitFor(/listening on (http:\/\/[\d.:]+)/);
    const env = { ...s.env, FSALE_GATEWAY_URL: gatewayUrl };
    const children: CliProcess[] = [gateway];
    try {
      const api = startCli(['serve', '--mode', 'sync', '--port', '0', '--rate-limit', '0'], env);
      children.push(api);
      const url = await api.waitFor(/listening on (http:\/\/[\d.:]+) \(1 process, sync mode/);
      // No order worker: in sync mode the API persists the orders itself.
      const payments = startCli(
        ['work', 'payments', '--json', '--timeout', '500ms', '--concurrency', '64'],
        env,
      );
      children.push(payments);

      const stock = await connectSse(`${url}/stock/sync-e2e/stream`);
      const tokens = mintTokens(
        TEST_JWT_SECRET,
        Array.from({ length: 3000 }, (_, i) => `se${i}`),
        600,
      );
      const responses = await Promise.all(
        tokens.map((token) => buy({ url }, { token, productId: 'sync-e2e', key: freshKey() })),
      );
      const accepted = responses
        .filter((r) => r.status === 201)
        .map((r) => (JSON.parse(r.body) as { orderId: string }).orderId);
      // Declines release units while the crowd is still buying, so a few more than 2,000 can win.
      expect(accepted.length).toBeGreaterThanOrEqual(2000);
      expect(accepted.length + responses.filter((r) => r.status === 409).length).toBe(3000);
      // Every 201 was in PostgreSQL when it was answered.
      const { rows } = await s.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])',
        [accepted],
      );
      expect(rows[0]?.n).toBe(accepted.length);

      await until('every order to leave pending', async () => {
        const { rows: open } = await s.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM orders WHERE product_id = 'sync-e2e' AND status = 'pending'",
        );
        return open[0]?.n === 0;
      });

      // Declines released units: buy them until sold out, as the crowd would.
      const rebuy = mintTokens(
        TEST_JWT_SECRET,
        Array.from({ length: 400 }, (_, i) => `slate${i}`),
        600,
      );
      await Promise.all(
        rebuy.map((token) => buy({ url }, { token, productId: 'sync-e2e', key: freshKey() })),
      );
      await until('the rebuys to settle', async () => {
        const n = await saleNumbers(s, 'sync-e2e');
        return (n.byStatus.pending ?? 0) === 0;
      });
      expect((await runCli(['reconcile', '--once', '--json'], env)).code).toBe(0);

      // The live stock over SSE follows PostgreSQL: its last event is what PG has left.
      const n = await saleNumbers(s, 'sync-e2e');
      await until(
        'the stock stream to catch up',
        async () => stock.events.at(-1)?.id === String(n.pgRemaining),
        10_000,
      );
      stock.close();
      expect(n.byStatus.pending ?? 0).toBe(0);
      expect(n.byStatus.needs_reconciliation ?? 0).toBe(0);
      expect(n.byStatus.paid ?? 0).toBeGreaterThan(0);
      expect(n.byStatus.payment_failed ?? 0).toBeGreaterThan(0);
      expect(n.unpersisted).toBe(0);
      expect(n.heldInPg).toBeLessThanOrEqual(2000);
      expect(n.redisStock + n.heldInPg).toBe(2000);
      expect(n.pgRemaining).toBe(n.redisStock);

      const ledger = await fetchLedger(gatewayUrl);
      const paid = await s.pool.query<{ id: string }>(
        "SELECT id FROM orders WHERE product_id = 'sync-e2e' AND status = 'paid'",
      );
      const succeeded = ledger.filter((c) => c.status === 'succeeded');
      expect(new Set(succeeded.map((c) => c.key))).toEqual(new Set(paid.rows.map((r) => r.id)));

      const audit = await runCli(['audit', '--json', '--product', 'sync-e2e'], env);
      const report = JSON.parse(audit.stdout) as AuditReport;
      expect(failed(report)).toEqual([]);
      expect(audit.code).toBe(0);

      payments.child.kill('SIGTERM');
      api.child.kill('SIGTERM');
      expect((await payments.exited).code).toBe(0);
      expect((await api.exited).code).toBe(0);
    } finally {
      for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
    }
  });

  it('a crash between COMMIT and the mirror shows in the audit, and `reconcile --rebuild-redis` repairs it', async () => {
    await seed(s, { productId: 'crash', stock: 10, perUserLimit: 5 });
    const api = await startApi(s, { mode: 'sync' });
    expect(
      (await buy(api, { token: tokenFor('c1'), productId: 'crash', key: freshKey(), qty: 2 }))
        .status,
    ).toBe(201);
    // What a process that dies right after COMMIT leaves behind: the transaction, no mirror.
    const key = freshKey();
    const { rows } = await s.pool.query<{ r_code: number }>(
      'SELECT r_code FROM fsale_sync_buy($1, $2, $3, $4, $5, false)',
      [randomUUID(), 'crash', 'c2', 3, key],
    );
    expect(rows[0]?.r_code).toBe(1);

    const ctx = { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix };
    const before = await runAudit(ctx, { productId: 'crash' });
    expect(failed(before)).toEqual([
      'crash: conservation (Redis stock + live reservations = stock)',
      'crash: Redis and PG stock agree',
    ]);
    // Redis errs on the side of showing units that PostgreSQL will refuse, never the reverse.
    expect(await saleState(s, 'crash')).toMatchObject({ stock: '8', bought: { c1: '2' } });
    expect(await pgState(s, 'crash')).toMatchObject({ remaining: 5, orders: 2 });

    await rebuildRedis(ctx);
    const after = await runAudit(ctx, { productId: 'crash' });
    expect(failed(after)).toEqual([]);
    expect(await saleState(s, 'crash')).toMatchObject({ stock: '5', bought: { c1: '2', c2: '3' } });
    // The retry of the crashed request replays its committed order; nothing moves.
    const retry = await buy(api, { token: tokenFor('c2'), productId: 'crash', key, qty: 3 });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(failed(await runAudit(ctx, { productId: 'crash' }))).toEqual([]);
  });

  // Drives one node's connection by hand (disconnect, reconnect): not a cluster client's.
  it.skipIf(ON_CLUSTER)(
    'a mirror that cannot reach Redis is kept and applied exactly once when Redis answers again',
    async () => {
      await seed(s, { productId: 'mirror', stock: 10 });
      const redis = await connectRedis(s.redisUrl, { persistent: true });
      const mirror = new StockMirror(redis, s.keyPrefix, 50);
      try {
        redis.disconnect(false);
        const order = { orderId: randomUUID(), productId: 'mirror', userId: 'm1', qty: 1 };
        await mirror.apply(order);
        expect(mirror.backlog).toBe(1);
        expect(await saleState(s, 'mirror')).toMatchObject({ stock: '10', bought: {} });
        // The connection closes asynchronously; it can be opened again once it has ended.
        await until('the connection to close', async () => redis.status === 'end', 10_000);
        await redis.connect();
        await until('the mirror to be retried', async () => mirror.backlog === 0, 10_000);
        // Applying it again (a retry whose first reply was lost) changes nothing.
        await mirror.apply(order);
        expect(await saleState(s, 'mirror')).toMatchObject({ stock: '9', bought: { m1: '1' } });
      } finally {
        await mirror.close();
        redis.disconnect();
      }
    },
  );

  it('a PostgreSQL connection lost after the buy was sent answers 503 outcome_unknown, and the retry gets the committed order', async () => {
    await seed(s, { productId: 'lost', stock: 5, perUserLimit: 1 });
    const target = new URL(s.databaseUrl);
    // Every byte to and from PostgreSQL takes 1 s: the window between COMMIT and its answer,
    // wide enough for a busy machine to see the commit and cut the link within it.
    const proxy = await startFaultProxy(target.hostname, Number(target.port || 5432), {
      kind: 'latency',
      ms: 1_000,
    });
    try {
      const api = await startApi(s, {
        mode: 'sync',
        databaseUrl: throughProxy(s.databaseUrl, proxy),
        pgPoolSize: 1,
      });
      const warm = await buy(api, {
        token: tokenFor('lost-warm'),
        productId: 'lost',
        key: freshKey(),
      });
      expect(warm.status).toBe(201);

      const token = tokenFor('lost-buyer');
      const key = freshKey();
      const pending = buy(api, { token, productId: 'lost', key });
      const committed = async () =>
        (
          await s.pool.query<{ id: string }>(
            'SELECT id FROM orders WHERE product_id = $1 AND user_id = $2',
            ['lost', 'lost-buyer'],
          )
        ).rows[0]?.id;
      // PostgreSQL has committed the order; its answer is still on the way: the link goes.
      await until(
        'the order to be committed',
        async () => (await committed()) !== undefined,
        30_000,
        5,
      );
      await proxy.cut();
      const lost = await pending;
      expect(lost.status).toBe(503);
      expect(lost.body).toMatch(/urn:fsale:problem:outcome_unknown/);
      expect(lost.body).toMatch(/connection to PostgreSQL broke after the buy was sent/);

      await proxy.restore();
      proxy.setMode({ kind: 'pass' });
      const retry = await buy(api, { token, productId: 'lost', key });
      expect(retry.status).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect((JSON.parse(retry.body) as { orderId: string }).orderId).toBe(await committed());
      expect(await pgState(s, 'lost')).toMatchObject({ remaining: 3, orders: 2 });
      // Redis learns of the order through the retry: the same stock, the buyer counted once.
      const keys = productKeys(s.keyPrefix, 'lost');
      expect(await s.redis.get(keys.stock)).toBe('3');
      expect(await s.redis.hget(keys.bought, 'lost-buyer')).toBe('1');
      expect(await s.redis.hget(keys.owners, (await committed()) ?? '')).toBe('lost-buyer');
      // Replayed again: still counted once.
      await buy(api, { token, productId: 'lost', key });
      expect(await s.redis.get(keys.stock)).toBe('3');
    } finally {
      await proxy.close();
    }
  });

  it("a key's answer is its order, for as long as the order exists; a rejection records nothing", async () => {
    await seed(s, { productId: 'aged', stock: 10, perUserLimit: 1 });
    const api = await startApi(s, { mode: 'sync' });
    const token = tokenFor('old');
    const key = freshKey();
    const first = await buy(api, { token, productId: 'aged', key });
    expect(first.status).toBe(201);
    // However old the order is, the key still replays it.
    await s.pool.query(
      "UPDATE orders SET accepted_at = now() - interval '400 days' WHERE product_id = 'aged'",
    );
    const again = await buy(api, { token, productId: 'aged', key });
    expect(again.status).toBe(201);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await persistedOrders(s, 'aged')).toHaveLength(1);
    expect(await pgState(s, 'aged')).toMatchObject({ remaining: 9, orders: 1 });
    const other = await buy(api, { token, productId: 'aged', key, qty: 2 });
    expect(other.status).toBe(422);
    const refused = await buy(api, { token, productId: 'aged', key: freshKey() });
    expect(refused.status).toBe(409);
    expect(await pgState(s, 'aged')).toMatchObject({ remaining: 9, orders: 1 });
    // Every process of the sale sees the same live stock.
    const keys = productKeys(s.keyPrefix, 'aged');
    expect(await s.redis.get(keys.stock)).toBe('9');
  });
});
