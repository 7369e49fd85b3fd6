// The payment worker's leases as its counters report them: a stop ends the lease of a charge
// that has not finished (still retrying a throttled provider), so another worker takes the job
// at once rather than when the lease would have run out; that worker's lease is a fresh one,
// not an expired one.
import { beforeAll, describe, expect, it } from 'vitest';
import { PaymentProvider } from '../../src/payments/provider-client.js';
import { startPaymentWorker } from '../../src/workers/payments.js';
import { insertPendingOrder, startFakeProvider } from '../helpers/fake-provider.js';
import { memoryLogger } from '../helpers/log.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

/** A provider that answers every charge with `status` (503: try again, no Retry-After). */
function startProvider(status: 201 | 503) {
  return startFakeProvider((n) => ({
    status,
    headers: { 'content-type': 'application/json' },
    body: status === 201 ? JSON.stringify({ chargeId: `ch_${n}` }) : '{}',
  }));
}

describe('payment worker leases', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('a stop ends the lease of a charge still retrying, and the next worker takes the job at once', async () => {
    await seed(s, { productId: 'ended', stock: 5, priceCents: 100 });
    const orderId = await insertPendingOrder(s, 'ended');
    const ctx = { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix };
    const throttled = await startProvider(503);
    // Retried for minutes (1,000 times, backoff capped at 200 ms): far longer than a stop waits
    // (timeout + 1 s). The timeout is generous: a charge that timed out would be settled as unknown.
    const first = startPaymentWorker(
      { ...ctx, gateway: new PaymentProvider(throttled.url), log: memoryLogger().logger },
      { timeoutMs: 2_000, maxBackoffMs: 200, maxRetries: 1_000, pollMs: 50 },
    );
    const charging = await startProvider(201);
    try {
      await until('the first charge attempt', () => throttled.arrivals.length > 0);
      await first.stop();
      expect(first.stats()).toMatchObject({
        claimed: 1,
        expiredLeases: 0,
        leasesEnded: 1,
        handedBack: 0,
        paid: 0,
      });
      const { rows } = await s.pool.query<{ status: string; leased: boolean }>(
        'SELECT status, payment_lease_until IS NOT NULL AS leased FROM orders WHERE id = $1',
        [orderId],
      );
      expect(rows[0]).toEqual({ status: 'pending', leased: false });

      const second = startPaymentWorker(
        { ...ctx, gateway: new PaymentProvider(charging.url), log: memoryLogger().logger },
        { timeoutMs: 1_000, pollMs: 50 },
      );
      try {
        await until('the order to be paid', () => second.stats().paid === 1);
        // Its lease had been ended, not left to run out.
        expect(second.stats()).toMatchObject({ claimed: 1, expiredLeases: 0 });
      } finally {
        await second.stop();
      }
    } finally {
      throttled.server.close();
      charging.server.close();
    }
  });
});
