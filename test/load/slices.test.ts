import { describe, expect, it } from 'vitest';
import { ArrivalSchedule, seededRandom } from '../../src/load/arrivals.js';
import { connectionsToWarm } from '../../src/load/open-model.js';
import { PurchasePlan, type PreparedArrivals } from '../../src/load/plan.js';
import {
  arrivalsInSlice,
  parsePart,
  SliceSyntaxError,
  subSlice,
  WHOLE,
  type Slice,
} from '../../src/load/slices.js';

const prepare = (slice: Slice, users: number, retryRatio = 0): PreparedArrivals =>
  new PurchasePlan({
    jwtSecret: 's'.repeat(32),
    users,
    userPrefix: 'u',
    keyPrefix: 'k',
    tokenTtlSeconds: 60,
    productId: 'p1',
    qty: 1,
    retryRatio,
    random: seededRandom(3),
    premint: 0,
  }).prepare({
    schedule: new ArrivalSchedule({ rate: 500, rampSeconds: 1, spikes: [] }, 3),
    process: 'uniform',
    limit: undefined,
    slice,
  });

describe('slicing one sale between threads and machines', () => {
  it('--part K/N is 1-based and checked', () => {
    expect(parsePart('2/3')).toEqual({ index: 1, count: 3 });
    for (const bad of ['0/3', '4/3', '1/0', 'a/b', '1'])
      expect(() => parsePart(bad)).toThrow(SliceSyntaxError);
  });

  it('three parts hold every arrival of the whole run exactly once, and no user is in two parts', () => {
    const users = 250;
    const whole = prepare(WHOLE, users);
    const parts = [0, 1, 2].map((index) => prepare({ index, count: 3 }, users));
    expect(parts.reduce((n, p) => n + p.count, 0)).toBe(whole.count);
    const key = (p: PreparedArrivals, i: number) => `${p.purchases[i]?.key}@${p.times[i]}`;
    const union = parts.flatMap((p) => Array.from({ length: p.count }, (_, i) => key(p, i))).sort();
    expect(union).toEqual(Array.from({ length: whole.count }, (_, i) => key(whole, i)).sort());
    const owners = new Map<number, number>();
    parts.forEach((p, part) => {
      for (const purchase of p.purchases) {
        expect(owners.get(purchase.user) ?? part).toBe(part);
        owners.set(purchase.user, part);
      }
    });
    parts.forEach((p, index) =>
      expect(arrivalsInSlice({ index, count: 3 }, whole.count, users)).toBe(p.count),
    );
  });

  it('retries replay a purchase of their own slice, so users stay partitioned with --retry-ratio', () => {
    const parts = [0, 1].map((index) => prepare({ index, count: 2 }, 100, 0.2));
    parts.forEach((p, index) => {
      expect(p.kinds.filter((k) => k === 'retry').length).toBeGreaterThan(0);
      for (const purchase of p.purchases) expect(purchase.user % 2).toBe(index);
    });
  });

  it('the threads of a part split exactly that part’s users', () => {
    const part = { index: 1, count: 3 };
    const threads = [0, 1].map((index) => prepare(subSlice(part, { index, count: 2 }), 300));
    const partUsers = new Set(prepare(part, 300).purchases.map((p) => p.user));
    const threadUsers = threads.map((t) => new Set(t.purchases.map((p) => p.user)));
    expect([...(threadUsers[0] ?? [])].some((u) => threadUsers[1]?.has(u))).toBe(false);
    expect(new Set([...(threadUsers[0] ?? []), ...(threadUsers[1] ?? [])])).toEqual(partUsers);
  });

  it('every prepared purchase carries its header list, shared by its retries', () => {
    const p = prepare(WHOLE, 50, 0.3);
    for (const purchase of p.purchases) {
      expect(purchase.headerList?.[1]).toMatch(/^Bearer /);
      expect(purchase.headerList?.[7]).toBe(purchase.key);
    }
  });

  it('connections warmed before the clock follow the busiest 100 ms of the schedule', () => {
    const steady = Float64Array.from({ length: 1000 }, (_, i) => i); // 1000/s
    const burst = Float64Array.from({ length: 1000 }, (_, i) => i / 10); // 10,000/s
    expect(connectionsToWarm(steady, 1000)).toBe(10);
    expect(connectionsToWarm(burst, 1000)).toBe(100);
    expect(connectionsToWarm(burst, 20)).toBe(20);
  });
});
