import { describe, expect, it } from 'vitest';
import { keyedOrderIds, newOrderId } from '../../src/domain/order-id.js';

const UUID8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const buy = { productId: 'p1', userId: 'u1', qty: 1, idempotencyKey: 'k-1' };

describe('order ids', () => {
  const idOf = keyedOrderIds('a-test-secret-of-16+');

  it('a keyed buy names the same UUIDv8 on every attempt', () => {
    expect(idOf(buy)).toMatch(UUID8);
    expect(idOf({ ...buy })).toBe(idOf(buy));
    expect(keyedOrderIds('a-test-secret-of-16+')(buy)).toBe(idOf(buy));
  });

  it('every part of the name, and the secret, gives another id', () => {
    const variants = [
      buy,
      { ...buy, productId: 'p2' },
      { ...buy, userId: 'u2' },
      { ...buy, qty: 2 },
      { ...buy, idempotencyKey: 'k-2' },
    ];
    const ids = variants.map(idOf);
    expect(new Set(ids).size).toBe(variants.length);
    expect(keyedOrderIds('another-secret-of-16+')(buy)).not.toBe(idOf(buy));
  });

  it('sets the version and variant bits whatever the digest', () => {
    for (let i = 0; i < 2_000; i++)
      expect(idOf({ ...buy, idempotencyKey: `k${i}` })).toMatch(UUID8);
  });

  it('newOrderId (tests, benchmarks, orders from before keyed ids) is a time-ordered UUIDv7', () => {
    const id = newOrderId(0x0123456789ab);
    expect(id).toMatch(/^01234567-89ab-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newOrderId()).not.toBe(newOrderId());
  });
});
