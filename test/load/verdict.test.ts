import { describe, expect, it } from 'vitest';
import { EXIT, verdict, type AuditSummary } from '../../src/load/summary.js';
import type { ThresholdResult } from '../../src/load/thresholds.js';

const audit = (ok: boolean, ran = true): AuditSummary => ({
  ran,
  ok,
  attempts: 1,
  error: ran ? null : 'ECONNREFUSED',
  checks: [{ name: 'no_oversell', ok, expected: '<= 10', actual: ok ? '10' : '11' }],
});
const threshold = (ok: boolean): ThresholdResult => ({
  expression: 'p99<50ms',
  metric: 'p99',
  op: '<',
  limit: 50,
  actual: ok ? 10 : 80,
  ok,
});
const limits = ['99% of sends within 120 ms of their intended time (bound 50 ms)'];

describe('the verdict of a flood', () => {
  it('passes only a run the generator kept to its schedule', () => {
    const base = { secondReservations: 0, audit: audit(true), thresholds: [threshold(true)] };
    expect(verdict({ ...base, generatorLimits: [] })).toMatchObject({
      ok: true,
      status: 'pass',
      exitCode: EXIT.ok,
    });
    const limited = verdict({ ...base, generatorLimits: limits });
    expect(limited).toMatchObject({
      ok: false,
      status: 'inconclusive',
      exitCode: EXIT.inconclusive,
    });
    expect(limited.reasons).toEqual([`generator limited: ${limits[0]}`]);
  });

  it('a missed threshold on a limited run is inconclusive: the figures it read are not the server’s', () => {
    const v = verdict({
      secondReservations: 0,
      audit: audit(true),
      thresholds: [threshold(false)],
      generatorLimits: limits,
    });
    expect(v.exitCode).toBe(EXIT.inconclusive);
    expect(v.reasons.some((r) => r.startsWith('threshold p99<50ms missed'))).toBe(true);
  });

  it('a broken invariant or an audit that could not run outranks a limited generator', () => {
    expect(
      verdict({
        secondReservations: 0,
        audit: audit(false),
        thresholds: [],
        generatorLimits: limits,
      }).exitCode,
    ).toBe(EXIT.invariant);
    expect(
      verdict({ secondReservations: 2, audit: null, thresholds: [], generatorLimits: limits })
        .status,
    ).toBe('fail');
    expect(
      verdict({
        secondReservations: 0,
        audit: audit(false, false),
        thresholds: [],
        generatorLimits: limits,
      }).exitCode,
    ).toBe(EXIT.unchecked);
  });

  it('without a limit, a missed threshold fails with exit 3', () => {
    expect(
      verdict({
        secondReservations: 0,
        audit: null,
        thresholds: [threshold(false)],
        generatorLimits: [],
      }),
    ).toMatchObject({ ok: false, status: 'fail', exitCode: EXIT.threshold });
  });
});
