// The mock gateway over real HTTP (port 0): idempotency, the ledger, failures and shutdown.
import { afterEach, describe, expect, it } from 'vitest';
import { buildGateway, listenGateway, type GatewayOptions } from '../../src/gateway/app.js';
import {
  DEFAULT_RATES,
  drawOutcome,
  type BehaviourModel,
  type Outcome,
  type OutcomeRates,
} from '../../src/gateway/behaviour.js';
import { until } from '../helpers/wait.js';

const SEED = 4242;
/** Fast enough for tests: a 650 ms median becomes 0.65 ms. */
const SPEED = 1000;
const NO_FAILURES: OutcomeRates = { hang: 0, unavailable: 0, rateLimited: 0, declined: 0 };

const started: { close: () => Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((app) => app.close()));
});

async function startGateway(options: GatewayOptions = {}): Promise<string> {
  const app = buildGateway({ seed: SEED, speed: SPEED, ...options });
  started.push(app);
  return listenGateway(app, '127.0.0.1', 0);
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

function charge(
  base: string,
  key: string | undefined,
  body: unknown = { orderId: key ?? 'order', amountCents: 1999 },
  init: RequestInit = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  return fetch(`${base}/charges`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  }).then(answer);
}

async function ledgerOf(base: string, key: string): Promise<Answer> {
  return answer(await fetch(`${base}/charges/${encodeURIComponent(key)}`));
}

async function wholeLedger(base: string): Promise<Record<string, unknown>[]> {
  const charges: Record<string, unknown>[] = [];
  let after: unknown = '0';
  while (typeof after === 'string') {
    const page = await answer(await fetch(`${base}/charges?after=${after}&limit=7`));
    expect(page.status).toBe(200);
    charges.push(...(page.body.charges as Record<string, unknown>[]));
    after = page.body.next;
  }
  return charges;
}

/** The first key `order-N` whose drawn attempts match `wanted`, one predicate per attempt. */
function keyWhere(model: BehaviourModel, ...wanted: ((o: Outcome) => boolean)[]): string {
  for (let i = 0; i < 100_000; i++) {
    const key = `order-${i}`;
    if (wanted.every((matches, attempt) => matches(drawOutcome(model, key, attempt)))) return key;
  }
  throw new Error('no such key in the first 100,000');
}

const defaultModel: BehaviourModel = { seed: SEED, speed: SPEED, rates: { ...DEFAULT_RATES } };
const is =
  (kind: Outcome['kind'], charged?: boolean) =>
  (o: Outcome): boolean =>
    o.kind === kind && (charged === undefined || (o.kind === 'hang' && o.charged === charged));

describe('fsale gateway over HTTP', () => {
  it('charges a new key once (201) and replays the same charge on a retry (200)', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    const first = await charge(base, 'order-1', { orderId: 'order-1', amountCents: 1999 });
    expect(first.status).toBe(201);
    expect(first.body).toEqual({
      chargeId: expect.stringMatching(/^ch_[0-9a-f]{24}$/) as unknown,
      orderId: 'order-1',
      amountCents: 1999,
      status: 'succeeded',
    });
    expect(first.headers.get('location')).toBe('/charges/order-1');

    const again = await charge(base, 'order-1', { orderId: 'order-1', amountCents: 1999 });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);

    const recorded = await ledgerOf(base, 'order-1');
    expect(recorded.status).toBe(200);
    expect(recorded.body).toMatchObject({
      key: 'order-1',
      status: 'succeeded',
      chargeId: first.body.chargeId,
      orderId: 'order-1',
      amountCents: 1999,
      attempts: 2,
      answered: true,
    });
    expect(await wholeLedger(base)).toHaveLength(1);
  });

  it('makes exactly one charge when 50 requests with one key arrive at once', async () => {
    // A key whose charge takes over 1 s at speed 1 (200 ms at speed 5): the 50 requests
    // arrive while the first is still in flight and must share it.
    const key = keyWhere(defaultModel, (o) => o.kind === 'succeeded' && o.latencyMs * SPEED > 1000);
    const base = await startGateway({ speed: 5 });
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => charge(base, key, { orderId: key, amountCents: 500 })),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(49);
    const bodies = new Set(answers.map((a) => JSON.stringify(a.body)));
    expect(bodies.size).toBe(1);

    const ledger = await wholeLedger(base);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ key, status: 'succeeded', attempts: 50 });
  });

  it('declines all 50 concurrent requests of a declined key with one identical answer', async () => {
    const base = await startGateway({ speed: 5, rates: { ...NO_FAILURES, declined: 1 } });
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => charge(base, 'order-d', { orderId: 'd', amountCents: 1 })),
    );
    expect(answers.every((a) => a.status === 402)).toBe(true);
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect(await wholeLedger(base)).toHaveLength(1);
  });

  it('keeps a declined key declined on retry, even when a new draw would have succeeded', async () => {
    const key = keyWhere(defaultModel, is('declined'), is('succeeded'), is('succeeded'));
    const base = await startGateway();
    const first = await charge(base, key);
    expect(first.status).toBe(402);
    expect(first.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(first.body).toMatchObject({
      type: 'urn:fsale:gateway:card_declined',
      status: 402,
      orderId: key,
      amountCents: 1999,
      declineCode: expect.any(String) as unknown,
    });
    for (let i = 0; i < 2; i++) {
      const retry = await charge(base, key);
      expect(retry.status).toBe(402);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.body).toEqual(first.body);
    }
    const recorded = await ledgerOf(base, key);
    expect(recorded.body).toMatchObject({ status: 'declined', attempts: 3 });
    expect(recorded.body).not.toHaveProperty('chargeId');
  });

  it('records nothing for a 503 and draws a new outcome on retry', async () => {
    const key = keyWhere(defaultModel, is('unavailable'), is('succeeded'));
    const base = await startGateway();
    const first = await charge(base, key);
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ type: 'urn:fsale:gateway:unavailable', status: 503 });
    expect((await ledgerOf(base, key)).body).toMatchObject({ status: 404, attempts: 1 });

    const retry = await charge(base, key);
    expect(retry.status).toBe(201);
    expect((await ledgerOf(base, key)).body).toMatchObject({ status: 'succeeded', attempts: 2 });
  });

  it('answers 429 with Retry-After, records nothing, and draws a new outcome on retry', async () => {
    const key = keyWhere(defaultModel, is('rateLimited'), is('declined'));
    const base = await startGateway();
    const first = await charge(base, key);
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('1');
    expect(first.body).toMatchObject({ type: 'urn:fsale:gateway:rate_limited' });
    expect((await ledgerOf(base, key)).status).toBe(404);
    expect((await charge(base, key)).status).toBe(402);
  });

  it('never answers a hung charge; the ledger says whether the money was taken', async () => {
    const takenKey = keyWhere(defaultModel, is('hang', true));
    const lostKey = keyWhere(defaultModel, is('hang', false), is('succeeded'));
    const base = await startGateway();

    for (const key of [takenKey, lostKey]) {
      await expect(
        charge(base, key, undefined, { signal: AbortSignal.timeout(200) }),
      ).rejects.toThrow(/abort|timeout/i);
    }

    const taken = await ledgerOf(base, takenKey);
    expect(taken.body).toMatchObject({ status: 'succeeded', answered: false, attempts: 1 });
    const replay = await charge(base, takenKey);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ chargeId: taken.body.chargeId, status: 'succeeded' });

    expect((await ledgerOf(base, lostKey)).status).toBe(404);
    expect((await charge(base, lostKey)).status).toBe(201);
  });

  it('refuses the same key with a different order or amount (422), charging nothing new', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    expect((await charge(base, 'k1', { orderId: 'o1', amountCents: 100 })).status).toBe(201);
    for (const other of [
      { orderId: 'o2', amountCents: 100 },
      { orderId: 'o1', amountCents: 101 },
    ]) {
      const reused = await charge(base, 'k1', other);
      expect(reused.status).toBe(422);
      expect(reused.body).toMatchObject({ type: 'urn:fsale:gateway:idempotency_key_reused' });
    }
    expect(await wholeLedger(base)).toHaveLength(1);
    expect((await ledgerOf(base, 'k1')).body).toMatchObject({ orderId: 'o1', attempts: 1 });
  });

  it('refuses a different body for a key whose first charge is still in flight (422)', async () => {
    // Latency ~65 s: the first charge stays in flight for the whole test.
    const base = await startGateway({ speed: 0.01, rates: NO_FAILURES });
    const first = charge(base, 'slow', { orderId: 'o1', amountCents: 100 });
    await until(
      'the gateway to get there',
      async () => (await ledgerOf(base, 'slow')).status === 409,
      10_000,
      5,
    );
    const inFlight = await ledgerOf(base, 'slow');
    expect(inFlight.body).toMatchObject({ type: 'urn:fsale:gateway:charge_in_progress' });
    expect(inFlight.headers.get('retry-after')).toBe('1');

    const reused = await charge(base, 'slow', { orderId: 'o2', amountCents: 100 });
    expect(reused.status).toBe(422);

    // Shutting down answers the charge in flight at once instead of waiting out its latency.
    await started.splice(0)[0]?.close();
    expect((await first).status).toBe(201);
  });

  it('resets hung connections when it shuts down instead of waiting for them', async () => {
    const app = buildGateway({ seed: SEED, speed: SPEED, rates: { ...NO_FAILURES, hang: 1 } });
    const base = await listenGateway(app, '127.0.0.1', 0);
    const hung = charge(base, 'hung', { orderId: 'o', amountCents: 1 });
    await until(
      'the gateway to get there',
      async () => (await ledgerOf(base, 'hung')).body.attempts === 1,
      10_000,
      5,
    );
    await app.close();
    await expect(hung).rejects.toThrow();
  });

  it('answers 400 problem+json to a request it cannot charge', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    const good = { orderId: 'o', amountCents: 10 };
    const cases: [string, Promise<Answer>][] = [
      ['no key', charge(base, undefined, good)],
      ['empty key', charge(base, '', good)],
      ['key too long', charge(base, 'k'.repeat(256), good)],
      ['key not printable ASCII', charge(base, 'caf\u00e9', good)],
      ['extra field', charge(base, 'k', { ...good, currency: 'EUR' })],
      ['amount as a string', charge(base, 'k', { orderId: 'o', amountCents: '10' })],
      ['fractional amount', charge(base, 'k', { orderId: 'o', amountCents: 10.5 })],
      ['negative amount', charge(base, 'k', { orderId: 'o', amountCents: -1 })],
      ['no orderId', charge(base, 'k', { amountCents: 10 })],
      ['empty orderId', charge(base, 'k', { orderId: '', amountCents: 10 })],
      ['not JSON', charge(base, 'k', '{"orderId":')],
      ['JSON null', charge(base, 'k', 'null')],
    ];
    for (const [name, pending] of cases) {
      const refused = await pending;
      expect(refused.status, name).toBe(400);
      expect(refused.headers.get('content-type'), name).toMatch(/^application\/problem\+json/);
      expect(refused.body, name).toMatchObject({
        type: 'urn:fsale:gateway:bad_request',
        status: 400,
        detail: expect.any(String) as unknown,
      });
    }
    expect(await wholeLedger(base)).toHaveLength(0);
    // The longest valid key is fine.
    expect((await charge(base, 'k'.repeat(255), good)).status).toBe(201);
  });

  it('answers 415 to a body that is not JSON and 413 to a huge one', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    const text = await answer(
      await fetch(`${base}/charges`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'idempotency-key': 'k' },
        body: 'hello',
      }),
    );
    expect(text.status).toBe(415);
    expect(text.body).toMatchObject({ type: 'urn:fsale:gateway:unsupported_media_type' });
    const huge = await charge(base, 'k', { orderId: 'o'.repeat(100_000), amountCents: 1 });
    expect(huge.status).toBe(413);
    expect(huge.body).toMatchObject({ type: 'urn:fsale:gateway:payload_too_large' });
  });

  function voidKey(base: string, key: string, amountCents = 1999): Promise<Answer> {
    return fetch(`${base}/charges/${encodeURIComponent(key)}/void`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: key, amountCents }),
    }).then(answer);
  }

  it('voids a key nobody charged: every later charge with it is refused and nothing is charged', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    const voided = await voidKey(base, 'late');
    expect(voided.status).toBe(200);
    expect(voided.body).toMatchObject({ key: 'late', status: 'voided' });
    expect(voided.body.chargeId).toBeUndefined();
    // The charge that was still on its way arrives now: refused, and it stays refused.
    for (let i = 0; i < 3; i++) {
      const late = await charge(base, 'late', { orderId: 'late', amountCents: 1999 });
      expect(late.status).toBe(409);
      expect(late.body).toMatchObject({ type: 'urn:fsale:gateway:charge_voided' });
    }
    expect((await ledgerOf(base, 'late')).body).toMatchObject({ status: 'voided', attempts: 3 });
    const replay = await voidKey(base, 'late');
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await wholeLedger(base)).filter((c) => c.status === 'succeeded')).toEqual([]);
  });

  it('does not void a key that was charged first, or one whose charge is in flight', async () => {
    const base = await startGateway({ rates: NO_FAILURES, speed: 1 });
    const paid = await startGateway({ rates: NO_FAILURES });
    expect((await charge(paid, 'won', { orderId: 'won', amountCents: 1999 })).status).toBe(201);
    const tooLate = await voidKey(paid, 'won');
    expect(tooLate.status).toBe(409);
    expect(tooLate.body).toMatchObject({
      type: 'urn:fsale:gateway:charge_exists',
      charge: { key: 'won', status: 'succeeded' },
    });
    expect((await charge(paid, 'won', { orderId: 'won', amountCents: 1999 })).status).toBe(200);

    // speed 1: the charge waits out a real latency, so the void meets it in flight.
    const inFlight = charge(base, 'slow', { orderId: 'slow', amountCents: 1999 });
    await until(
      'the gateway to get there',
      async () => (await ledgerOf(base, 'slow')).status === 409,
      10_000,
      5,
    );
    const meanwhile = await voidKey(base, 'slow');
    expect(meanwhile.status).toBe(409);
    expect(meanwhile.body).toMatchObject({ type: 'urn:fsale:gateway:charge_in_progress' });
    expect((await inFlight).status).toBe(201);
    expect((await voidKey(base, 'slow')).body).toMatchObject({
      charge: { status: 'succeeded' },
    });
  });

  it('answers GET /charges/:key from the ledger: 404 problem+json when never charged', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    const missing = await ledgerOf(base, 'never');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(missing.body).toMatchObject({ type: 'urn:fsale:gateway:not_found', attempts: 0 });

    const odd = 'order/with spaces?and#more%';
    expect((await charge(base, odd, { orderId: 'x', amountCents: 5 })).status).toBe(201);
    expect((await ledgerOf(base, odd)).body).toMatchObject({ key: odd, status: 'succeeded' });
    expect((await ledgerOf(base, 'k'.repeat(300))).status).toBe(400);
  });

  it('lists the whole ledger in pages, in the order charges were settled', async () => {
    const base = await startGateway({ rates: NO_FAILURES });
    for (let i = 0; i < 25; i++) {
      expect((await charge(base, `page-${i}`, { orderId: `o${i}`, amountCents: i })).status).toBe(
        201,
      );
    }
    const ledger = await wholeLedger(base);
    expect(ledger.map((c) => c.key)).toEqual(Array.from({ length: 25 }, (_, i) => `page-${i}`));
    const last = await answer(await fetch(`${base}/charges?after=21&limit=1000`));
    expect(last.body).toMatchObject({ next: null });
    expect(last.body.charges).toHaveLength(4);
    for (const bad of ['limit=0', 'limit=1001', 'limit=ten', 'after=-1', 'other=1']) {
      expect((await fetch(`${base}/charges?${bad}`)).status, bad).toBe(400);
    }
  });

  it('is reproducible: the same seed gives the same answers and charge ids in any order', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `repro-${i}`);
    const rates = { ...DEFAULT_RATES, hang: 0 };
    const run = async (seed: number, order: string[]) => {
      const base = await startGateway({ seed, rates });
      const answers = new Map<string, string>();
      await Promise.all(
        order.map(async (key) => {
          const a = await charge(base, key);
          answers.set(key, `${a.status} ${JSON.stringify(a.body)}`);
        }),
      );
      return keys.map((key) => answers.get(key));
    };
    const forward = await run(7, keys);
    expect(await run(7, [...keys].reverse())).toEqual(forward);
    expect(await run(8, keys)).not.toEqual(forward);
  });

  it('reports its health and model, and answers unknown routes with 404 problem+json', async () => {
    const base = await startGateway({ seed: 99, speed: 50 });
    const health = await answer(await fetch(`${base}/healthz`));
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', seed: 99, speed: 50, charges: 0 });
    const unknown = await answer(await fetch(`${base}/nope`));
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ type: 'urn:fsale:gateway:not_found' });
  });

  it('refuses impossible options', () => {
    expect(() => buildGateway({ speed: 0 })).toThrow(/speed/);
    expect(() => buildGateway({ rates: { ...DEFAULT_RATES, declined: 0.99 } })).toThrow(
      /more than 1/,
    );
  });
});
