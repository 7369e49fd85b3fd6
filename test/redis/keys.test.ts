import { describe, expect, it } from 'vitest';
import { idempotencyKey, productKeys, shardTag } from '../../src/redis/keys.js';

describe('productKeys', () => {
  it('builds every key of a product under its hash tag, and shares them within the process', () => {
    const keys = productKeys('kt', 'p1');
    expect(keys).toMatchObject({
      tag: 'p:p1',
      shard: 0,
      shards: 1,
      stock: 'kt:{p:p1}:stock',
      orders: 'kt:{p:p1}:orders',
      stockChannel: 'kt:{p:p1}:stock-feed',
      idempotencyPrefix: 'kt:{p:p1}:idem:',
    });
    expect(productKeys('kt', 'p1')).toBe(keys);
    expect(Object.isFrozen(keys)).toBe(true);
    expect(productKeys('kt2', 'p1').stock).toBe('kt2:{p:p1}:stock');
  });

  it("a shard's keys sit under the shard's own tag, the channel stays the product's", () => {
    const tag = shardTag('p1', 2, 7);
    const keys = productKeys('kt', 'p1', { tag, shard: 2, shards: 3 });
    expect(keys).toMatchObject({
      stock: 'kt:{p:p1~2.7}:stock',
      stockChannel: 'kt:{p:p1~2.7}:stock-feed',
    });
    expect(keys).toMatchObject({ shard: 2, shards: 3 });
    expect(idempotencyKey(keys, 'ab', 'k')).toBe('kt:{p:p1~2.7}:idem:2:ab:k');
  });

  it('keeps a bounded number of products: ids made up by clients cannot grow it forever', () => {
    const first = productKeys('kt-bound', 'made-up-0');
    for (let i = 1; i <= 5_000; i++) productKeys('kt-bound', `made-up-${i}`);
    const again = productKeys('kt-bound', 'made-up-0');
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});
