// The mock gateway's metrics: every charge and void counted once by its outcome, the answered
// ones timed in a histogram in seconds, and gauges for what is in flight and in the ledger.
import { afterEach, describe, expect, it } from 'vitest';
import { buildGateway } from '../../src/gateway/app.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';

const started: { close: () => Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((app) => app.close()));
});

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

async function samples(metrics: GatewayMetrics, name: string): Promise<Sample[]> {
  const all = await metrics.registry.getMetricsAsJSON();
  return (all.find((m) => m.name === name)?.values ?? []) as Sample[];
}

async function byOutcome(metrics: GatewayMetrics, name: string): Promise<Record<string, number>> {
  return Object.fromEntries(
    (await samples(metrics, name)).map((s) => [String(s.labels.outcome), s.value]),
  );
}

const STATUS_OUTCOME: Record<number, string> = {
  201: 'succeeded',
  402: 'declined',
  429: 'rate_limited',
  503: 'unavailable',
};

describe('gateway metrics', () => {
  it('counts every charge by the outcome its caller got, replays and reused keys apart', async () => {
    const metrics = new GatewayMetrics();
    // No hangs, so every request is answered; failure rates high enough to see each outcome.
    const rates = { hang: 0, unavailable: 0.2, rateLimited: 0.2, declined: 0.2 };
    const app = buildGateway({ seed: 99, speed: 10_000, rates, metrics });
    started.push(app);
    const charge = (key: string, amountCents = 1999) =>
      app.inject({
        method: 'POST',
        url: '/charges',
        headers: { 'idempotency-key': key },
        payload: { orderId: key, amountCents },
      });

    const seen: Record<string, number> = {};
    const count = (outcome: string) => (seen[outcome] = (seen[outcome] ?? 0) + 1);
    for (let i = 0; i < 200; i++) {
      const answer = await charge(`order-${i}`);
      const outcome = STATUS_OUTCOME[answer.statusCode];
      expect(outcome, `status ${answer.statusCode}`).toBeDefined();
      count(outcome ?? '');
    }
    // A final answer asked again is a replay; the same key with another amount is refused.
    const final = (await app.inject({ method: 'GET', url: '/charges?limit=1000' })).json<{
      charges: { key: string }[];
    }>().charges;
    for (const { key } of final.slice(0, 5)) {
      expect((await charge(key)).headers['idempotent-replayed']).toBe('true');
      count('replayed');
    }
    expect((await charge(final[0]?.key ?? '', 1)).statusCode).toBe(422);
    count('key_reused');

    expect(Object.keys(seen)).toEqual(
      expect.arrayContaining(['succeeded', 'declined', 'rate_limited', 'unavailable']),
    );
    expect(await byOutcome(metrics, 'fsale_gateway_charges_total')).toEqual(seen);
    const histogram = await samples(metrics, 'fsale_gateway_charge_duration_seconds');
    const timed = histogram.filter((s) => s.metricName?.endsWith('_count'));
    const timedTotal = timed.reduce((sum, s) => sum + s.value, 0);
    expect(timedTotal).toBe(Object.values(seen).reduce((a, b) => a + b, 0));
    expect((await samples(metrics, 'fsale_gateway_ledger_entries'))[0]?.value).toBe(final.length);
    expect((await samples(metrics, 'fsale_gateway_charges_in_flight'))[0]?.value).toBe(0);
  });

  it('counts voids by outcome and a hung charge without timing it', async () => {
    const metrics = new GatewayMetrics();
    const app = buildGateway({
      seed: 5,
      speed: 10_000,
      rates: { hang: 1, unavailable: 0, rateLimited: 0, declined: 0 },
      metrics,
    });
    started.push(app);
    const body = { orderId: 'o-1', amountCents: 500 };
    const voidOf = (key: string) =>
      app.inject({ method: 'POST', url: `/charges/${key}/void`, payload: body });
    expect((await voidOf('o-1')).statusCode).toBe(200);
    expect((await voidOf('o-1')).statusCode).toBe(200);
    expect(await byOutcome(metrics, 'fsale_gateway_voids_total')).toEqual({
      voided: 1,
      replayed: 1,
    });

    // A hang never answers: the request is left open, so do not wait for it.
    const listening = await app.listen({ host: '127.0.0.1', port: 0 });
    const controller = new AbortController();
    const hung = fetch(`${listening}/charges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'o-2' },
      body: JSON.stringify({ orderId: 'o-2', amountCents: 500 }),
      signal: controller.signal,
    }).catch(() => 'aborted');
    for (let i = 0; (await byOutcome(metrics, 'fsale_gateway_charges_total')).hung !== 1; i++) {
      expect(i, 'the hung charge was never counted').toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    controller.abort();
    expect(await hung).toBe('aborted');
    const timed = (await samples(metrics, 'fsale_gateway_charge_duration_seconds')).filter((s) =>
      s.metricName?.endsWith('_count'),
    );
    expect(timed).toEqual([]);
  });
});
