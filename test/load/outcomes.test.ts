import { describe, expect, it } from 'vitest';
import { problemBody } from '../../src/server/problems.js';
import { classify, ERROR_CLASSES, problemType, SHED_CLASSES } from '../../src/load/outcomes.js';

describe('outcome classes', () => {
  it('counts a 503 outcome_unknown apart from load shedding: the buy may have been accepted', () => {
    const body = problemBody(
      'outcome_unknown',
      'the connection to Redis broke after the buy was sent',
    );
    expect(classify(503, problemType(body))).toBe('outcome_unknown');
    expect(ERROR_CLASSES).toContain('outcome_unknown');
    expect(SHED_CLASSES).not.toContain('outcome_unknown');
    // The API's other 503s are load shedding or an outage before anything was sent.
    expect(classify(503, problemType(problemBody('overloaded')))).toBe('overloaded');
    expect(classify(503, problemType(problemBody('unavailable')))).toBe('overloaded');
  });

  it('classes every other answer as before', () => {
    expect(classify(202, undefined)).toBe('accepted');
    expect(classify(201, undefined)).toBe('accepted');
    expect(classify(409, 'sold_out')).toBe('sold_out');
    expect(classify(409, 'limit_reached')).toBe('conflict');
    expect(classify(429, 'rate_limited')).toBe('rate_limited');
    expect(classify(500, 'internal')).toBe('server_error');
    expect(classify(401, 'unauthorized')).toBe('client_error');
    expect(classify(302, undefined)).toBe('other');
  });
});
