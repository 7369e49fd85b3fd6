import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { runAudit, type AuditReport } from '../../src/audit/audit.js';
import type { RecordedCharge } from '../../src/payments/provider-client.js';
import { productKeys } from '../../src/redis/keys.js';
import { runCli } from '../helpers/cli.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';

/** Does what the order worker does, synchronously: persist every streamed order as pending. */
async function persistStream(s: TestServices, productId: string): Promise<string[]> {
  const keys = productKeys(s.keyPrefix, productId);
  const entries = await s.redis.xrange(keys.orders, '-', '+');
  const ids: string[] = [];
  for (const [, f] of entries) {
    const field = (name: string) => f[f.indexOf(name) + 1] ?? '';
    await s.pool.query(
      `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
       VALUES ($1, $2, $3, $4, 'pending', $5, now())`,
      [field('id'), productId, field('user'), Number(field('qty')), field('key')],
    );
    await s.pool.query('UPDATE products SET remaining = remaining - $2 WHERE id = $1', [
      productId,
      Number(field('qty')),
    ]);
    ids.push(field('id'));
  }
  return ids;
}

/** Marks orders paid, with the matching PG payment rows and gateway ledger entries. */
async function payAll(s: TestServices, ids: string[]): Promise<RecordedCharge[]> {
  const ledger: RecordedCharge[] = [];
  for (const id of ids) {
    const chargeId = `ch_${id.slice(0, 8)}`;
    await s.pool.query("UPDATE orders SET status = 'paid' WHERE id = $1", [id]);
    await s.pool.query(
      "INSERT INTO payments (order_id, attempt, outcome, http_status, gateway_charge_id, latency_ms) VALUES ($1, 1, 'paid', 201, $2, 5)",
      [id, chargeId],
    );
    ledger.push({ key: id, status: 'succeeded', chargeId, orderId: id, amountCents: 1999 });
  }
  return ledger;
}

const failing = (report: AuditReport) => report.checks.filter((c) => !c.ok).map((c) => c.name);

describe('fsale audit', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
  });

  /** A finished sale of `stock` units, all sold and paid: every invariant holds. */
  async function finishedSale(productId: string, stock = 5) {
    await seed(s, { productId, stock });
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: stock + 3 }, (_, i) => `${productId}-u${i}`),
      600,
    );
    await Promise.all(tokens.map((token) => buy(api, { token, productId, key: freshKey() })));
    const ids = await persistStream(s, productId);
    const ledger = await payAll(s, ids);
    const ctx = { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix, ledger };
    const audit = (options = {}) => runAudit(ctx, { productId, persistGraceMs: 0, ...options });
    expect(failing(await audit())).toEqual([]);
    return { ids, ledger, ctx, audit };
  }

  it('a clean sale passes every check, and the CLI says so with exit 0', async () => {
    await finishedSale('clean');
    const result = await runCli(['audit', '--product', 'clean', '--no-gateway', '--json'], s.env);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report.ok).toBe(true);
    expect(report.checks.length).toBeGreaterThanOrEqual(9);
    for (const c of report.checks)
      expect(Object.keys(c).sort()).toEqual(['actual', 'expected', 'name', 'ok']);
  });

  it('catches an oversold product', async () => {
    const { audit } = await finishedSale('over');
    await s.pool.query(
      `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
       VALUES ($1, 'over', 'sneaky', 1, 'paid', 'k', now())`,
      [randomUUID()],
    );
    expect(failing(await audit())).toContain('over: no oversell (held units <= stock)');
    const cli = await runCli(['audit', '--product', 'over', '--no-gateway'], s.env);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/no oversell.*FAIL/);
  });

  it('catches an acknowledged order missing from PostgreSQL', async () => {
    const { audit } = await finishedSale('lostorder');
    // An entry the API acknowledged (it is in the stream) that never reached PG.
    await s.redis.xadd(
      productKeys(s.keyPrefix, 'lostorder').orders,
      '*',
      'id',
      randomUUID(),
      'user',
      'ghost',
      'qty',
      '1',
      'key',
      'k1',
      'at',
      String(Date.now()),
    );
    expect(failing(await audit())).toContain('lostorder: every accepted order in PG within 0 s');
  });

  it('catches a duplicate charge', async () => {
    const { audit, ids, ledger, ctx } = await finishedSale('double');
    const victim = ids[0] ?? '';
    ctx.ledger = [
      ...ledger,
      {
        key: `retry-${victim}`,
        status: 'succeeded',
        chargeId: 'ch_second',
        orderId: victim,
        amountCents: 1999,
      },
    ];
    expect(failing(await audit())).toContain(
      'double: at most one successful charge per order (gateway)',
    );
    await s.pool.query(
      "INSERT INTO payments (order_id, attempt, outcome, http_status, gateway_charge_id, latency_ms) VALUES ($1, 2, 'paid', 201, 'ch_second', 5)",
      [victim],
    );
    expect(failing(await audit())).toContain(
      'double: at most one successful charge per order (PG)',
    );
  });

  it('catches a stuck order', async () => {
    const { audit, ids } = await finishedSale('stuck');
    await s.pool.query(
      "UPDATE orders SET status = 'needs_reconciliation', updated_at = now() - interval '1 hour' WHERE id = $1",
      [ids[0]],
    );
    expect(failing(await audit({ stuckAfterMs: 60_000 }))).toContain(
      'stuck: no order stuck for 60 s',
    );
  });

  it('catches a Redis/PostgreSQL stock mismatch', async () => {
    const { audit } = await finishedSale('drift');
    await s.redis.incrby(productKeys(s.keyPrefix, 'drift').stock, 2);
    const names = failing(await audit());
    expect(names).toContain('drift: Redis and PG stock agree');
    expect(names).toContain('drift: conservation (Redis stock + live reservations = stock)');
  });

  it('exits 2 when a service cannot be reached', async () => {
    const result = await runCli(['audit', '--no-gateway'], {
      ...s.env,
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot reach Redis/);
    const noGateway = await runCli(['audit'], {
      ...s.env,
      FSALE_GATEWAY_URL: 'http://127.0.0.1:1',
    });
    expect(noGateway.code).toBe(2);
    expect(noGateway.stderr).toMatch(/cannot reach gateway/);
  });
});
