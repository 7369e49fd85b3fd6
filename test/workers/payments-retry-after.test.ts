// A provider's Retry-After is honoured without outliving the worker's lease on the job: a
// wait longer than the worker's own backoff cap hands the job back, leased until the wait is
// over, instead of sleeping on it while the lease runs out and the job is claimed again.
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PaymentProvider } from '../../src/payments/provider-client.js';
import { startPaymentWorker } from '../../src/workers/payments.js';
import { memoryLogger } from '../helpers/log.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

/** A provider that answers 429 with `retryAfterSeconds` first, then charges. */
async function startThrottlingProvider(retryAfterSeconds: number) {
  const arrivals: number[] = [];
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      arrivals.push(Date.now());
      if (arrivals.length === 1) {
        response.writeHead(429, { 'retry-after': String(retryAfterSeconds) });
        response.end('{}');
        return;
      }
      response.writeHead(201, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ chargeId: `ch_${arrivals.length}`, status: 'succeeded' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${address.port}`, arrivals, server };
}

describe('payment worker and Retry-After', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('a Retry-After longer than the lease hands the job back; no charge is retried before it', async () => {
    await seed(s, { productId: 'throttled', stock: 5, priceCents: 100 });
    const orderId = randomUUID();
    await s.pool.query(
      `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
       VALUES ($1, 'throttled', 'u1', 1, 'pending', 'k1', now())`,
      [orderId],
    );
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
