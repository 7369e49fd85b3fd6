import { describe, expect, it } from 'vitest';
import { isDataError, isStockGuardViolation } from '../../src/db/errors.js';
import { backoffMs } from '../../src/workers/runtime.js';

describe('worker failures', () => {
  it('treats refused data as the row’s fault and everything else as a moment to wait out', () => {
    expect(isDataError({ code: '23514' })).toBe(true); // check violation
    expect(isDataError({ code: '23503' })).toBe(true); // unknown product (foreign key)
    expect(isDataError({ code: '22003' })).toBe(true); // qty out of range
    expect(isDataError({ code: '40P01' })).toBe(false); // deadlock: retry
    expect(isDataError({ code: '57P01' })).toBe(false); // admin shutdown: retry
    expect(isDataError({ code: 'ECONNREFUSED' })).toBe(false);
    expect(isDataError(new Error('Connection terminated'))).toBe(false);
  });

  it('recognises the stock guard on products only', () => {
    expect(isStockGuardViolation({ code: '23514', table: 'products' })).toBe(true);
    expect(isStockGuardViolation({ code: '23514', table: 'orders' })).toBe(false);
  });

  it('backs off exponentially with jitter, capped', () => {
    expect(backoffMs(1, 5_000, () => 0)).toBe(100);
    expect(backoffMs(1, 5_000, () => 1)).toBe(200);
    expect(backoffMs(3, 5_000, () => 1)).toBe(800);
    expect(backoffMs(50, 5_000, () => 1)).toBe(5_000);
    expect(backoffMs(50, 5_000, () => 0)).toBe(2_500);
  });
});
