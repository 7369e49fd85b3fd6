// Scenario 13 — a charge request outlives the worker that sent it. Between the payment worker
// and `fsale gateway` sits a store-and-forward proxy (an egress queue, a slow provider edge)
// that holds every request longer than the worker's timeout. The worker gives up: the orders
// become needs_reconciliation. `fsale reconcile --once` finds no charge at the gateway yet,
// which is not proof that none will come: it must void the keys before it releases the units.
// The units are resold and paid by other buyers; then the held requests reach the gateway.
// They must be refused: no buyer charged for an order that failed, and the audit (with the
// gateway's ledger) holds.
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { runCli } from '../helpers/cli.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { reconcileUntilTerminal, startProxiedPayments } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const PRODUCT = 'late13';
const UNITS = 10;

describe('scenario 13: a charge delayed past the worker timeout, reconciled, then delivered', () => {
  let s: TestServices;
  let api: RunningApi;
  let gatewayUrl: string;
  let proxy: FaultProxy;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { buyPolicy: { rateLimit: 0 } });
    const stack = await startProxiedPayments(s.env, {
      seed: 13,
      proxyMode: { kind: 'hold' },
      paymentArgs: ['--timeout', '1s'],
    });
    ({ gatewayUrl, proxy } = stack);
    return () => stack.stop();
  });

  async function buyAll(tag: string): Promise<string[]> {
    const answers = await Promise.all(
      Array.from({ length: UNITS }, (_, i) =>
        buy(api, { token: tokenFor(`${tag}${i}`), productId: PRODUCT, key: freshKey() }),
      ),
    );
    for (const r of answers) expect(r.status, r.body).toBe(202);
    return answers.map((r) => (JSON.parse(r.body) as { orderId: string }).orderId);
  }

  async function statusesOf(ids: string[]): Promise<Record<string, number>> {
    const { rows } = await s.pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[]) GROUP BY status',
      [ids],
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  it('voids before releasing: the late charges are refused, nobody pays for a failed order', async () => {
    await seed(s, { productId: PRODUCT, stock: UNITS, priceCents: 1500, perUserLimit: 1 });

    // The first buyers' charges are held by the proxy: the worker times out on every one.
    const first = await buyAll('early');
    await until(
      'the first buyers: needs_reconciliation',
      async () => (await statusesOf(first)).needs_reconciliation === UNITS,
      120_000,
    );
    expect(proxy.stats.delivered).toBe(0);

    // Reconcile asks the gateway directly: it has heard of none of these charges yet.
    const reconciled = await runCli(['reconcile', '--once', '--json'], {
      ...s.env,
      FSALE_GATEWAY_URL: gatewayUrl,
    });
    expect(reconciled.code, reconciled.stderr).toBe(0);
    expect(await statusesOf(first)).toEqual({ payment_failed: UNITS });
    expect(proxy.stats.delivered).toBe(0);

    // The released units are sold again, and the new buyers' charges go straight through.
    proxy.setMode({ kind: 'pass' });
    const second = await buyAll('late');
    await until(
      'the second buyers: charged',
      async () => ((await statusesOf(second)).pending ?? 0) === 0 && second.length === UNITS,
      120_000,
    );

    // Now the egress queue delivers the first buyers' charges.
    proxy.deliverHeld();
    await until(
      'every held charge request answered by the gateway',
      async () => {
        const answered = await Promise.all(
          first.map(async (key) => {
            const r = await fetch(`${gatewayUrl}/charges/${key}`);
            const body = (await r.json()) as { attempts?: number };
            return r.status !== 409 && (body.attempts ?? 0) >= 1;
          }),
        );
        return answered.every(Boolean);
      },
      60_000,
    );
    expect(proxy.stats.delivered).toBe(UNITS);

    const ledger = await fetchLedger(gatewayUrl);
    const byKey = new Map(ledger.map((c) => [c.key, c.status]));
    expect(first.map((id) => byKey.get(id))).toEqual(first.map(() => 'voided'));

    await reconcileUntilTerminal(s, { ...s.env, FSALE_GATEWAY_URL: gatewayUrl }, PRODUCT);
    const failed = await s.pool.query<{ id: string }>(
      "SELECT id FROM orders WHERE product_id = $1 AND status = 'payment_failed'",
      [PRODUCT],
    );
    const chargedAndFailed = failed.rows.filter((r) => byKey.get(r.id) === 'succeeded');
    expect(chargedAndFailed).toEqual([]);
    expectAuditOk(await audit(s, gatewayUrl, PRODUCT));
  });
});
