// Scenario 7 — the payment gateway misbehaves. The payment worker reaches `fsale gateway`
// only through a TCP fault proxy that, one batch of orders at a time, hangs (blackhole), answers
// 503 storms and 429 storms itself, slows every byte down (latency), and resets connections.
// Every order must end paid, payment_failed or needs_reconciliation; once the proxy passes
// traffic again, `fsale reconcile --once` settles all of them, the ledger holds at most one
// successful charge per order, and the audit holds.
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchLedger } from '../../src/audit/ledger.js';
import { mintTokens } from '../../src/auth/tokens.js';
import { runCli } from '../helpers/cli.js';
import type { FaultMode, FaultProxy } from '../helpers/fault-proxy.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { expectAuditPasses } from '../helpers/audit.js';
import { startProxiedPayments } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const PRODUCT = 'g7';
const BATCH = 40;
const TERMINAL_OR_UNKNOWN = ['paid', 'payment_failed', 'needs_reconciliation'];

describe('scenario 7: gateway hangs, 503/429 storms, slow responses and resets', () => {
  let s: TestServices;
  let api: RunningApi;
  let gatewayUrl: string;
  let proxy: FaultProxy;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { buyPolicy: { rateLimit: 0 } });
    const stack = await startProxiedPayments(s.env, {
      seed: 77,
      paymentArgs: [
        '--timeout',
        '800ms',
        '--max-retries',
        '2',
        '--max-backoff',
        '200ms',
        '--concurrency',
        '32',
      ],
    });
    ({ gatewayUrl, proxy } = stack);
    return () => stack.stop();
  });

  let userCounter = 0;
  /** A batch of buyers, each with their own token; resolves with the accepted order ids. */
  async function buyBatch(): Promise<string[]> {
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: BATCH }, () => `g7u${userCounter++}`),
      900,
    );
    const answers = await Promise.all(
      tokens.map((token) => buy(api, { token, productId: PRODUCT, key: freshKey() })),
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

  /** Waits until every order of `ids` is in PG and none is pending. */
  async function settled(ids: string[], what: string): Promise<Record<string, number>> {
    await until(
      `${what}: all ${ids.length} orders out of pending`,
      async () => {
        const byStatus = await statusesOf(ids);
        const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
        return total === ids.length && (byStatus.pending ?? 0) === 0;
      },
      120_000,
    );
    return statusesOf(ids);
  }

  /** Under a storm the proxy answers every attempt: wait for `attempts` of them; nothing settles. */
  async function storm(mode: FaultMode & { kind: 'http' }, ids: string[]) {
    const before = proxy.stats.answered;
    await until(
      `${mode.status} storm: the worker to try (and retry) every order`,
      () => proxy.stats.answered - before >= 2 * ids.length,
      120_000,
    );
    const byStatus = await statusesOf(ids);
    // Retryable answers move nothing: the orders wait, pending, and the gateway saw none.
    expect(byStatus, `${mode.status} storm`).toEqual({ pending: ids.length });
    const ledger = new Set((await fetchLedger(gatewayUrl)).map((c) => c.key));
    expect(ids.filter((id) => ledger.has(id))).toEqual([]);
  }

  it('every order ends paid, failed or needs_reconciliation; reconcile settles all', async () => {
    await seed(s, { productId: PRODUCT, stock: 1000, priceCents: 2500, perUserLimit: 1 });

    // A hung provider: connections accepted, never answered -> the worker's timeout.
    proxy.setMode({ kind: 'blackhole' });
    const blackhole = await buyBatch();
    expect(await settled(blackhole, 'blackhole')).toEqual({ needs_reconciliation: BATCH });

    // 503 storm, then 429 storm, both with Retry-After: retried, then handed back for later.
    proxy.setMode({ kind: 'http', status: 503, retryAfterSeconds: 1 });
    const storm503 = await buyBatch();
    await storm({ kind: 'http', status: 503 }, storm503);
    proxy.setMode({ kind: 'http', status: 429, retryAfterSeconds: 1 });
    const storm429 = await buyBatch();
    await storm({ kind: 'http', status: 429 }, [...storm503, ...storm429]);

    // Connections reset on accept: the worker cannot know whether money moved.
    proxy.setMode({ kind: 'reset' });
    const reset = await buyBatch();
    expect(await settled(reset, 'reset')).toEqual({ needs_reconciliation: BATCH });

    // Slow but answering: 150 ms each way, inside the worker's 800 ms timeout.
    proxy.setMode({ kind: 'latency', ms: 150 });
    const latency = await buyBatch();
    // The storm orders handed back earlier come round again now, through the slow path too.
    const slow = await settled(latency, 'latency');
    for (const status of Object.keys(slow)) expect(TERMINAL_OR_UNKNOWN).toContain(status);
    expect(slow.paid ?? 0).toBeGreaterThan(BATCH / 2);

    // Traffic passes again: every order leaves pending by itself (storm orders included).
    proxy.setMode({ kind: 'pass' });
    const all = [...blackhole, ...storm503, ...storm429, ...reset, ...latency];
    const before = await settled(all, 'after the faults');
    for (const status of Object.keys(before)) expect(TERMINAL_OR_UNKNOWN).toContain(status);
    console.log(
      `scenario 7: before reconcile ${JSON.stringify(before)}; proxy ${JSON.stringify(proxy.stats)}`,
    );

    const reconcile = await runCli(['reconcile', '--once', '--json'], {
      ...s.env,
      FSALE_GATEWAY_URL: proxy.url,
    });
    expect(reconcile.code, reconcile.stderr).toBe(0);
    const after = await statusesOf(all);
    expect(Object.keys(after).filter((k) => k !== 'paid' && k !== 'payment_failed')).toEqual([]);
    expect(after.pending ?? 0).toBe(0);
    expect(after.needs_reconciliation ?? 0).toBe(0);
    // The gateway never saw a hung or reset order: all of them failed, and were released.
    expect(await statusesOf([...blackhole, ...reset])).toEqual({
      payment_failed: 2 * BATCH,
    });
    console.log(`scenario 7: after reconcile ${JSON.stringify(after)}`);

    // At most one successful charge per order, and exactly one per paid order.
    const ledger = await fetchLedger(gatewayUrl);
    const succeeded = ledger.filter((c) => c.status === 'succeeded').map((c) => c.key);
    expect(new Set(succeeded).size).toBe(succeeded.length);
    const paid = await s.pool.query<{ id: string }>(
      "SELECT id FROM orders WHERE status = 'paid' ORDER BY id",
    );
    expect([...succeeded].sort()).toEqual(paid.rows.map((r) => r.id));
    await expectAuditPasses({ ...s, gatewayUrl });
  });
});
