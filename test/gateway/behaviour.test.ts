import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RATES,
  LATENCY_MEDIAN_MS,
  LATENCY_P95_MS,
  drawOutcome,
  modelProblem,
  type BehaviourModel,
  type Outcome,
} from '../../src/gateway/behaviour.js';

const DRAWS = 20_000;
const model: BehaviourModel = { seed: 20_240_601, speed: 1, rates: { ...DEFAULT_RATES } };

function firstDraws(m: BehaviourModel, n = DRAWS): Outcome[] {
  return Array.from({ length: n }, (_, i) => drawOutcome(m, `order-${i}`, 0));
}

function quantile(sorted: number[], q: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  if (value === undefined) throw new Error('empty sample');
  return value;
}

/** Allowed gap between a sample proportion and p: five standard errors of the estimate. */
function tolerance(p: number, n: number): number {
  return 5 * Math.sqrt((p * (1 - p)) / n);
}

describe('the mock provider behaviour model', () => {
  it('draws 1 % hangs, 2 % 503, 1 % 429 and 5 % declines over 20,000 charges', () => {
    const outcomes = firstDraws(model);
    const share = (kind: Outcome['kind']) =>
      outcomes.filter((o) => o.kind === kind).length / outcomes.length;
    for (const [kind, p] of [
      ['hang', DEFAULT_RATES.hang],
      ['unavailable', DEFAULT_RATES.unavailable],
      ['rateLimited', DEFAULT_RATES.rateLimited],
      ['declined', DEFAULT_RATES.declined],
      ['succeeded', 0.91],
    ] as const) {
      expect(Math.abs(share(kind) - p), `${kind}: ${share(kind)}`).toBeLessThan(
        tolerance(p, DRAWS),
      );
    }
  });

  it('takes about half of the hung charges: the ledger, not the caller, knows which', () => {
    const hangs = firstDraws({ ...model, rates: { ...model.rates, hang: 1 } }, 4000);
    const charged = hangs.filter((o) => o.kind === 'hang' && o.charged).length / hangs.length;
    expect(Math.abs(charged - 0.5)).toBeLessThan(tolerance(0.5, hangs.length));
  });

  it('answers with log-normal latency: median near 650 ms and p95 near 2.3 s at speed 1', () => {
    const latencies = firstDraws(model)
      .flatMap((o) => ('latencyMs' in o ? [o.latencyMs] : []))
      .sort((a, b) => a - b);
    expect(latencies.length).toBeGreaterThan(0.98 * DRAWS);
    const median = quantile(latencies, 0.5);
    const p95 = quantile(latencies, 0.95);
    expect(median / LATENCY_MEDIAN_MS).toBeGreaterThan(0.95);
    expect(median / LATENCY_MEDIAN_MS).toBeLessThan(1.05);
    expect(p95 / LATENCY_P95_MS).toBeGreaterThan(0.93);
    expect(p95 / LATENCY_P95_MS).toBeLessThan(1.07);
    expect(latencies.every((ms) => Number.isFinite(ms) && ms > 0)).toBe(true);
  });

  it('divides latency and Retry-After by --speed, without changing any outcome', () => {
    const fast = { ...model, speed: 100 };
    for (let i = 0; i < 2000; i++) {
      const slow = drawOutcome(model, `order-${i}`, 0);
      const quick = drawOutcome(fast, `order-${i}`, 0);
      expect(quick.kind).toBe(slow.kind);
      if ('latencyMs' in slow && 'latencyMs' in quick) {
        expect(quick.latencyMs).toBeCloseTo(slow.latencyMs / 100, 9);
      }
      if (quick.kind === 'rateLimited') expect(quick.retryAfterSeconds).toBe(1);
      if (slow.kind === 'rateLimited') {
        expect(slow.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        expect(slow.retryAfterSeconds).toBeLessThanOrEqual(3);
      }
    }
  });

  it('is reproducible: the same seed gives every key the same outcome, in any order', () => {
    const keys = Array.from({ length: 500 }, (_, i) => `order-${i}`);
    const forward = keys.map((key) => drawOutcome(model, key, 0));
    const backward = [...keys].reverse().map((key) => drawOutcome(model, key, 0));
    expect(backward.reverse()).toEqual(forward);

    const other = keys.map((key) => drawOutcome({ ...model, seed: model.seed + 1 }, key, 0));
    expect(other).not.toEqual(forward);
  });

  it('draws a fresh outcome for every attempt of a key', () => {
    const key = 'order-retried';
    const attempts = Array.from({ length: 50 }, (_, n) => drawOutcome(model, key, n));
    const latencies = new Set(attempts.map((o) => ('latencyMs' in o ? o.latencyMs : -1)));
    expect(latencies.size).toBeGreaterThan(40);
  });

  it('gives every successful charge its own id', () => {
    const ids = firstDraws(model).flatMap((o) => (o.kind === 'succeeded' ? [o.chargeId] : []));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toMatch(/^ch_[0-9a-f]{24}$/);
  });

  it('honours forced rates: 100 % declines decline every charge', () => {
    const allDeclined = {
      ...model,
      rates: { hang: 0, unavailable: 0, rateLimited: 0, declined: 1 },
    };
    expect(firstDraws(allDeclined, 1000).every((o) => o.kind === 'declined')).toBe(true);
    const allFine = { ...model, rates: { hang: 0, unavailable: 0, rateLimited: 0, declined: 0 } };
    expect(firstDraws(allFine, 1000).every((o) => o.kind === 'succeeded')).toBe(true);
  });

  it('refuses a model it cannot draw from', () => {
    expect(modelProblem(model)).toBeUndefined();
    expect(modelProblem({ ...model, speed: 0 })).toMatch(/speed/);
    expect(modelProblem({ ...model, seed: -1 })).toMatch(/seed/);
    expect(modelProblem({ ...model, seed: 2 ** 32 })).toMatch(/seed/);
    expect(modelProblem({ ...model, rates: { ...model.rates, declined: 1.5 } })).toMatch(
      /declined/,
    );
    expect(modelProblem({ ...model, rates: { ...model.rates, declined: 0.97 } })).toMatch(
      /more than 1/,
    );
  });
});
