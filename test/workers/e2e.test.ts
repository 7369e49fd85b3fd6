import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { fetchLedger as readLedger } from '../../src/audit/ledger.js';
import { saleNumbers } from '../helpers/invariants.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { runCli } from '../helpers/cli.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

describe('a whole sale: API, order worker, payment worker, gateway, reconcile', () => {
  let s: TestServices;
  let api: RunningApi;
  let gateway: CliProcess;
  let gatewayUrl: string;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
    gateway = startCli(['gateway', '--port', '0', '--seed', '7', '--speed', '100'], s.env);
    gatewayUrl = await gateway.waitFor(/listening on (http:\/\/[\d.:]+)/);
    return async () => {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    };
  });

  it('3,000 buyers for 2,000 units: every 202 persisted, every order settled once, stock conserved', async () => {
    await seed(s, { productId: 'e2e', stock: 2000, priceCents: 1500 });
    const env = { ...s.env, FSALE_GATEWAY_URL: gatewayUrl };
    const orders = startCli(['work', 'orders', '--json'], env);
    const payments = startCli(
      ['work', 'payments', '--json', '--timeout', '500ms', '--concurrency', '64'],
      env,
    );

    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 3000 }, (_, i) => `e2e${i}`),
      600,
    );
    const responses = await Promise.all(
      tokens.map((token) => buy(api, { token, productId: 'e2e', key: freshKey() })),
    );
    const accepted = responses
      .filter((r) => r.status === 202)
      .map((r) => (JSON.parse(r.body) as { orderId: string }).orderId);
    // Declines release units while the crowd is still buying, so a few more than 2,000 can win.
    expect(accepted.length).toBeGreaterThanOrEqual(2000);
    expect(accepted.length + responses.filter((r) => r.status === 409).length).toBe(3000);

    // Every acknowledged order reaches PostgreSQL, and leaves `pending`.
    await until('every order to leave pending', async () => {
      const { rows } = await s.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[]) AND status <> 'pending'",
        [accepted],
      );
      return rows[0]?.n === accepted.length;
    });

    // Declines released units, which were sold again: buy them until sold out.
    const rebuy = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 400 }, (_, i) => `late${i}`),
      600,
    );
    await Promise.all(rebuy.map((token) => buy(api, { token, productId: 'e2e', key: freshKey() })));

    await until('the rebuys to settle', async () => {
      const n = await saleNumbers(s, 'e2e');
      return n.unpersisted === 0 && (n.byStatus.pending ?? 0) === 0;
    });

    const reconcile = await runCli(['reconcile', '--once', '--json'], env);
    expect(reconcile.code).toBe(0);

    payments.child.kill('SIGTERM');
    orders.child.kill('SIGTERM');
    expect((await payments.exited).code).toBe(0);
    expect((await orders.exited).code).toBe(0);

    const n = await saleNumbers(s, 'e2e');
    // Every order is terminal: paid or payment_failed.
    expect(Object.keys(n.byStatus).sort()).toEqual(expect.arrayContaining(['paid']));
    expect(n.byStatus.pending ?? 0).toBe(0);
    expect(n.byStatus.needs_reconciliation ?? 0).toBe(0);
    expect(n.byStatus.payment_failed ?? 0).toBeGreaterThan(0); // 5 % declines at least
    // No oversell, and conservation: Redis stock + held = initial, and PG agrees.
    expect(n.heldInPg).toBeLessThanOrEqual(2000);
    expect(n.redisStock + n.heldInPg).toBe(2000);
    expect(n.pgRemaining).toBe(n.redisStock);

    // The ledger: exactly one successful charge per paid order, none for the others.
    const ledger = await readLedger(gatewayUrl);
    const succeeded = ledger.filter((c) => c.status === 'succeeded');
    const paid = await s.pool.query<{ id: string }>(
      "SELECT id FROM orders WHERE product_id = 'e2e' AND status = 'paid'",
    );
    expect(new Set(succeeded.map((c) => c.key))).toEqual(new Set(paid.rows.map((r) => r.id)));
    expect(succeeded).toHaveLength(paid.rows.length);
    for (const charge of succeeded) expect(charge.amountCents).toBe(1500);
    // Each release happened once.
    const releases = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM stock_releases WHERE product_id = 'e2e'",
    );
    expect(releases.rows[0]?.n).toBe(n.byStatus.payment_failed);
  });
});
