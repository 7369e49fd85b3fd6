import { describe, expect, it } from 'vitest';
import {
  ArrivalSchedule,
  ShapeSyntaxError,
  arrivalTimes,
  parseSpike,
  parseStages,
  seededRandom,
} from '../../src/load/arrivals.js';

/** Every intended send time (ms) of a schedule, up to `limit` arrivals. */
function times(
  schedule: ArrivalSchedule,
  limit?: number,
  process: 'uniform' | 'poisson' = 'uniform',
) {
  const next = arrivalTimes(schedule, process, seededRandom(42), limit);
  const out: number[] = [];
  for (let t = next(); t !== undefined; t = next()) out.push(t);
  return out;
}

const perSecond = (ts: number[], seconds: number) =>
  Array.from(
    { length: seconds },
    (_, s) => ts.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length,
  );

describe('arrival shapes', () => {
  it('a constant rate spaces arrivals evenly: 200/s for 3 s is 600 arrivals, 5 ms apart', () => {
    const ts = times(new ArrivalSchedule({ rate: 200, rampSeconds: 0, spikes: [] }, 3));
    expect(ts).toHaveLength(600);
    expect(ts[0]).toBe(0);
    expect(ts[1]).toBeCloseTo(5, 9);
    expect(ts.at(-1)).toBeCloseTo(2995, 6);
  });

  it('a linear ramp from 0 to R over T seconds sends R·T/2 arrivals during the ramp, growing each second', () => {
    const schedule = new ArrivalSchedule({ rate: 100, rampSeconds: 4, spikes: [] }, 6);
    expect(schedule.rateAt(0)).toBe(0);
    expect(schedule.rateAt(2)).toBe(50);
    expect(schedule.rateAt(5)).toBe(100);
    expect(schedule.expectedArrivals(4)).toBeCloseTo(200, 9);
    expect(schedule.expectedArrivals(6)).toBeCloseTo(400, 9);
    const counts = perSecond(times(schedule), 6);
    // Second s of the ramp expects ∫ 25t dt over [s, s+1] = 12.5, 37.5, 62.5, 87.5.
    expect(counts[0]).toBeGreaterThanOrEqual(12);
    expect(counts[0]).toBeLessThanOrEqual(13);
    expect(counts[3]).toBeGreaterThanOrEqual(87);
    expect(counts[3]).toBeLessThanOrEqual(88);
    expect(counts.slice(4)).toEqual([100, 100]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(400);
  });

  it('a spike multiplies the rate for its length only', () => {
    const schedule = new ArrivalSchedule(
      { rate: 50, rampSeconds: 0, spikes: [parseSpike('4x@2s:1s')] },
      5,
    );
    expect(schedule.rateAt(1.99)).toBe(50);
    expect(schedule.rateAt(2)).toBe(200);
    expect(schedule.rateAt(2.99)).toBe(200);
    expect(schedule.rateAt(3)).toBe(50);
    expect(perSecond(times(schedule), 5)).toEqual([50, 50, 200, 50, 50]);
  });

  it('a spike during a ramp scales the ramp, and overlapping spikes multiply', () => {
    const schedule = new ArrivalSchedule(
      { rate: 100, rampSeconds: 10, spikes: [parseSpike('2x@4s:2s'), parseSpike('3x@5s:2s')] },
      10,
    );
    expect(schedule.rateAt(4.5)).toBeCloseTo(2 * 45, 9);
    expect(schedule.rateAt(5.5)).toBeCloseTo(6 * 55, 9);
    expect(schedule.rateAt(6.5)).toBeCloseTo(3 * 65, 9);
    // Λ is the integral of the rate: check one segment by hand, 2x over [4,5): 2·∫10t = 90.
    expect(schedule.expectedArrivals(5) - schedule.expectedArrivals(4)).toBeCloseTo(90, 9);
  });

  it('the schedule inverts its own integral: arrival k is at Λ⁻¹(k)', () => {
    const schedule = new ArrivalSchedule(
      { rate: 300, rampSeconds: 3, spikes: [parseSpike('5x@1.5s:500ms')] },
      8,
    );
    for (const k of [1, 10, 77, 300, 999, 1500]) {
      const t = schedule.timeOfArrival(k);
      expect(t).toBeDefined();
      expect(schedule.expectedArrivals(t ?? 0)).toBeCloseTo(k, 6);
    }
    expect(schedule.timeOfArrival(schedule.expectedArrivals(8) + 1)).toBeUndefined();
  });

  it('a run bounded by a count has no horizon and stops after that many arrivals', () => {
    const ts = times(
      new ArrivalSchedule({ rate: 1000, rampSeconds: 1, spikes: [] }, undefined),
      2500,
    );
    expect(ts).toHaveLength(2500);
    // 500 during the 1 s ramp, then 1 per ms.
    expect(ts.at(-1)).toBeCloseTo(1000 + 1999, 6);
  });

  it('Poisson arrivals keep the mean rate and are reproducible with a seed', () => {
    const schedule = new ArrivalSchedule({ rate: 1000, rampSeconds: 0, spikes: [] }, 10);
    const a = times(schedule, undefined, 'poisson');
    const b = times(schedule, undefined, 'poisson');
    expect(a).toEqual(b);
    expect(a.length).toBeGreaterThan(9_700);
    expect(a.length).toBeLessThan(10_300);
    const gaps = a.slice(1).map((t, i) => t - (a[i] ?? 0));
    expect(new Set(gaps.map((g) => g.toFixed(3))).size).toBeGreaterThan(1000);
  });

  it('parses durations and spikes, and rejects nonsense', () => {
    expect(parseSpike('5x@500ms:1.5m')).toEqual({ factor: 5, atSeconds: 0.5, forSeconds: 90 });
    expect(parseSpike('5x@10s')).toEqual({ factor: 5, atSeconds: 10, forSeconds: 1 });
    expect(parseSpike('2.5@1m:30s')).toEqual({ factor: 2.5, atSeconds: 60, forSeconds: 30 });
    for (const bad of ['x@1s', '0x@1s', '5x', '5x@', '5x@1s:0s', '5x@soon', '5x@10', '5x@1s:2'])
      expect(() => parseSpike(bad), bad).toThrow(ShapeSyntaxError);
    expect(() => new ArrivalSchedule({ rate: 0, rampSeconds: 0, spikes: [] }, 1)).toThrow(
      ShapeSyntaxError,
    );
  });
});

describe('--stages (ramping arrival rate)', () => {
  it('parses DURATION:TARGET lists and rejects what is not one', () => {
    expect(parseStages('10s:1000, 30s:5000,500ms:0')).toEqual([
      { durationSeconds: 10, target: 1000 },
      { durationSeconds: 30, target: 5000 },
      { durationSeconds: 0.5, target: 0 },
    ]);
    for (const bad of ['10s', '0s:100', '10s:-5', '10s:0', 'x:1', '10s:100,,', '10:100'])
      expect(() => parseStages(bad)).toThrow(ShapeSyntaxError);
  });

  it('ramps linearly between targets: 2s:100,2s:100,2s:0 sends 100 + 200 + 100 arrivals', () => {
    const stages = parseStages('2s:100,2s:100,2s:0');
    const schedule = new ArrivalSchedule(
      { rate: 100, rampSeconds: 0, spikes: [], stages },
      undefined,
    );
    expect(schedule.horizonSeconds).toBe(6);
    expect(schedule.rateAt(1)).toBeCloseTo(50, 9);
    expect(schedule.rateAt(3)).toBeCloseTo(100, 9);
    expect(schedule.rateAt(5)).toBeCloseTo(50, 9);
    expect(schedule.expectedArrivals(6)).toBeCloseTo(400, 9);
    const ts = times(schedule);
    expect(ts).toHaveLength(400);
    expect(perSecond(ts, 6)).toEqual([25, 75, 100, 100, 75, 25]);
  });

  it('spikes multiply a staged rate as they do a constant one', () => {
    const schedule = new ArrivalSchedule(
      {
        rate: 100,
        rampSeconds: 0,
        spikes: [{ factor: 3, atSeconds: 1, forSeconds: 1 }],
        stages: parseStages('3s:100'),
      },
      undefined,
    );
    expect(schedule.rateAt(1.5)).toBeCloseTo(((100 * 1.5) / 3) * 3, 6);
    expect(schedule.rateAt(2.5)).toBeCloseTo((100 * 2.5) / 3, 6);
  });
});
