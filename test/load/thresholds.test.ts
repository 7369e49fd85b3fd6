import { describe, expect, it } from 'vitest';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import {
  evaluateThresholds,
  parseThreshold,
  ThresholdSyntaxError,
} from '../../src/load/thresholds.js';

const parse = (text: string) => parseThreshold(text, OUTCOME_CLASSES);

describe('threshold grammar', () => {
  it('reads metric, operator and limit; a time takes the duration syntax, its unit required', () => {
    expect(parse('p99<50ms')).toEqual({
      expression: 'p99<50ms',
      metric: 'p99',
      op: '<',
      limit: 50,
    });
    expect(parse('time_to_sell_out<1m')).toMatchObject({ limit: 60_000 });
    expect(parse(' p999 <= 1.5s ')).toMatchObject({ metric: 'p999', op: '<=', limit: 1500 });
    expect(parse('p50:accepted<20ms')).toMatchObject({ metric: 'p50:accepted', limit: 20 });
    expect(parse('errors=0')).toMatchObject({ metric: 'errors', op: '=', limit: 0 });
    expect(parse('errors==0')).toMatchObject({ op: '=' });
    expect(parse('error_rate<1%')).toMatchObject({ metric: 'error_rate', limit: 0.01 });
    expect(parse('error_rate<0.01')).toMatchObject({ limit: 0.01 });
    expect(parse('rate>=900')).toMatchObject({ metric: 'rate', op: '>=', limit: 900 });
    expect(parse('orders!=0')).toMatchObject({ op: '!=' });
    expect(parse('confirm_p99<5s')).toMatchObject({ limit: 5000 });
  });

  it('rejects unknown metrics, classes, operators and misplaced units', () => {
    for (const bad of [
      'p98<50',
      'p99:teapot<5',
      'errors:accepted=0',
      'p99 ~ 50',
      'p99<',
      '<50',
      'p99<fast',
      'errors<5ms',
      'p99<5%',
      'rate>1s',
      'errors<1m',
    ])
      expect(() => parse(bad), bad).toThrow(ThresholdSyntaxError);
  });

  it('refuses a time without its unit, as every time flag does (a bare number is never guessed)', () => {
    expect(() => parse('p99<50')).toThrow(/p99 is a time: give its unit in "p99<50" \(p99<50ms/);
    expect(() => parse('confirm_p99<5')).toThrow(ThresholdSyntaxError);
  });
});

describe('threshold evaluation', () => {
  const metrics = { p99: 48.2, errors: 0, error_rate: 0.02, 'p99:accepted': 12, confirm_p99: null };

  it('passes and misses by comparing the measured value', () => {
    const results = evaluateThresholds(
      ['p99<50ms', 'p99<40ms', 'errors=0', 'error_rate<1%', 'p99:accepted<=12ms', 'p99>48.2ms'].map(
        parse,
      ),
      metrics,
    );
    expect(results.map((r) => [r.expression, r.actual, r.ok])).toEqual([
      ['p99<50ms', 48.2, true],
      ['p99<40ms', 48.2, false],
      ['errors=0', 0, true],
      ['error_rate<1%', 0.02, false],
      ['p99:accepted<=12ms', 12, true],
      ['p99>48.2ms', 48.2, false],
    ]);
  });

  it('a metric the run did not measure misses, whatever the operator', () => {
    const [result] = evaluateThresholds([parse('confirm_p99<5s')], metrics);
    expect(result).toMatchObject({ actual: null, ok: false });
    const [missing] = evaluateThresholds([parse('time_to_sell_out>0s')], metrics);
    expect(missing).toMatchObject({ actual: null, ok: false });
  });
});
