import { describe, expect, it } from 'vitest';
import { productKeys } from '../../src/redis/keys.js';
import { crc16, hashTagOf, keySlot } from '../../src/redis/slots.js';

describe('cluster slots', () => {
  it('computes CRC16-XMODEM as the cluster specification does', () => {
    // The specification's reference value.
    expect(crc16('123456789')).toBe(0x31c3);
  });

  it('hashes only the first non-empty hash tag', () => {
    expect(hashTagOf('{user1000}.following')).toBe('user1000');
    expect(hashTagOf('foo{}{bar}')).toBe('foo{}{bar}');
    expect(hashTagOf('foo{{bar}}zap')).toBe('{bar');
    expect(hashTagOf('foo{bar}{zap}')).toBe('bar');
    expect(hashTagOf('nobraces')).toBe('nobraces');
    const keys = productKeys('fsale', 'p1');
    expect(new Set([keys.stock, keys.sale, keys.orders, keys.bought].map(keySlot)).size).toBe(1);
  });
});
