// A provider's Retry-After is honoured without outliving the worker's lease on the job: a
// wait longer than the worker's own backoff cap hands the job back, leased until the wait is
// over, instead of sleeping on it while the lease runs out and the job is claimed again.
import { beforeAll, describe, expect, it } from 'vitest';
import { PaymentProvider } from '../../src/payments/provider-client.js';
import { startPaymentWorker } from '../../src/workers/payments.js';
import { insertPendingOrder, startFakeProvider } from '../helpers/fake-provider.js';
import { memoryLogger } from '../helpers/log.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

/** A provider that answers 429 with `retryAfterSeconds` first, then charges. */
function startThrottlingProvider(retryAfterSeconds: number) {
  return startFakeProvider((n) =>
    n === 1
      ? { status: 429, headers: { 'retry-after': String(retryAfterSeconds) }, body: '{}' }
      : {
          status: 201,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ chargeId: `ch_${n}`, status: 'succeeded' }),
        },
  );
}

describe('payment worker and Retry-After', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('a Retry-After longer than the lease hands the job back; no charge is retried before it', async () => {
    await seed(s, { productId: 'throttled', stock: 5, priceCents: 100 });
    const orderId = await insertPendingOrder(s, 'throttled');
    const provider = await startThrottlingProvider(4);
    // Lease: (200 + 100) * 3 + 200 = 1.1 s, far shorter than the 4 s the provider asks for.
    const worker = startPaymentWorker(
      {
        pool: s.pool,
        redis: s.redis,
        keyPrefix: s.keyPrefix,
        gateway: new PaymentProvider(provider.url),
        log: memoryLogger().logger,
      },
      { timeoutMs: 200, maxBackoffMs: 100, maxRetries: 2, pollMs: 50 },
    );
    try {
      await until(
        'the order to be paid',
        // The worker counts a charge once its settlement (COMMIT, then the publish) returned:
        // wait for both, or the count is read between the two.
        async () =>
          (await s.pool.query("SELECT 1 FROM orders WHERE id = $1 AND status = 'paid'", [orderId]))
            .rowCount === 1 && worker.stats().paid === 1,
        30_000,
      );
      const [first, second] = provider.arrivals;
      expect(provider.arrivals).toHaveLength(2);
      // Not before the provider said (a little slack for clock granularity).
      expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(3_900);
      // Handed back once, its lease extended to the provider's time; leased again when due.
      expect(worker.stats()).toMatchObject({
        paid: 1,
        handedBack: 1,
        claimed: 2,
        expiredLeases: 1,
        stale: 0,
        errors: 0,
      });
    } finally {
      await worker.stop();
      provider.server.close();
    }
  });
});
