// The idempotency of the provider itself, without HTTP: concurrent charges of one key.
import { describe, expect, it } from 'vitest';
import { DEFAULT_RATES, drawOutcome, type BehaviourModel } from '../../src/gateway/behaviour.js';
import { MockProvider, type ChargeAnswer } from '../../src/gateway/provider.js';

const model: BehaviourModel = { seed: 77, speed: 1000, rates: { ...DEFAULT_RATES } };

function keyWhose(kind: string, thenKind?: string): string {
  for (let i = 0; ; i++) {
    const key = `order-${i}`;
    if (
      drawOutcome(model, key, 0).kind === kind &&
      (thenKind === undefined || drawOutcome(model, key, 1).kind === thenKind)
    ) {
      return key;
    }
  }
}

function replayed(answer: ChargeAnswer): boolean | undefined {
  return 'replayed' in answer ? answer.replayed : undefined;
}

describe('the mock provider', () => {
  it('draws once for 50 simultaneous charges of one key and gives all of them that charge', async () => {
    const provider = new MockProvider(model);
    const key = keyWhose('succeeded');
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => provider.charge(key, { orderId: key, amountCents: 100 })),
    );
    expect(provider.ledger.size).toBe(1);
    expect(answers.filter((a) => replayed(a) === false)).toHaveLength(1);
    expect(answers.filter((a) => replayed(a) === true)).toHaveLength(49);
    const ids = new Set(answers.map((a) => (a.kind === 'succeeded' ? a.charge.chargeId : a.kind)));
    expect(ids.size).toBe(1);
    expect(provider.lookup(key)).toMatchObject({ state: 'recorded', attempts: 50 });
  });

  it('shares a transient 503 among simultaneous charges, then draws again on retry', async () => {
    const provider = new MockProvider(model);
    const key = keyWhose('unavailable', 'succeeded');
    const request = { orderId: key, amountCents: 100 };
    const first = await Promise.all(
      Array.from({ length: 10 }, () => provider.charge(key, request)),
    );
    expect(first.every((a) => a.kind === 'unavailable')).toBe(true);
    expect(provider.lookup(key)).toMatchObject({ state: 'none', attempts: 10 });

    const retry = await provider.charge(key, request);
    expect(retry).toMatchObject({ kind: 'succeeded', replayed: false });
    expect(provider.ledger.size).toBe(1);
  });

  it('refuses a different request for a key in flight or recorded, and counts no attempt', async () => {
    const provider = new MockProvider({ ...model, speed: 1 });
    const key = keyWhose('succeeded');
    const pending = provider.charge(key, { orderId: 'a', amountCents: 1 });
    expect(provider.lookup(key).state).toBe('inFlight');
    expect(await provider.charge(key, { orderId: 'b', amountCents: 1 })).toEqual({
      kind: 'keyReused',
      original: { orderId: 'a', amountCents: 1 },
    });
    provider.hurry();
    expect(await pending).toMatchObject({ kind: 'succeeded' });
    expect(await provider.charge(key, { orderId: 'a', amountCents: 2 })).toMatchObject({
      kind: 'keyReused',
    });
    expect(provider.attempts(key)).toBe(1);
  });
});
