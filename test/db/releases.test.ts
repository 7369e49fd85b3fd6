import { beforeAll, describe, expect, it } from 'vitest';
import { persistOrders } from '../../src/db/order-batch.js';
import { inTransaction } from '../../src/db/pool.js';
import { readProductStock } from '../../src/db/products.js';
import { findUnappliedReleases, markReleaseApplied, recordRelease } from '../../src/db/releases.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// The stock_releases table family (src/db/releases.ts): a release is recorded once per order,
// gives its units back to products.remaining once, and stays unapplied until Redis has them.

describe('recordRelease', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'rel', stock: 10, perUserLimit: 5 });
  });

  it('gives the units back once however often it runs, and is unapplied until marked', async () => {
    const order = {
      id: newOrderId(),
      productId: 'rel',
      userId: 'rel-user',
      qty: 3,
      idempotencyKey: 'rel-key',
      acceptedAt: Date.now(),
    };
    expect(await persistOrders(s.pool, [order])).toEqual(['inserted']);
    expect(await readProductStock(s.pool, 'rel')).toEqual({ stockTotal: 10, remaining: 7 });

    const release = { orderId: order.id, productId: 'rel', qty: 3 };
    const recorded = await Promise.all(
      Array.from({ length: 4 }, () =>
        inTransaction(s.pool, (client) => recordRelease(client, release, 'declined')),
      ),
    );
    expect(recorded.filter(Boolean)).toHaveLength(1);
    expect(await readProductStock(s.pool, 'rel')).toEqual({ stockTotal: 10, remaining: 10 });

    const mine = (await findUnappliedReleases(s.pool)).filter((r) => r.orderId === order.id);
    expect(mine).toEqual([{ orderId: order.id, productId: 'rel', userId: 'rel-user', qty: 3 }]);
    await markReleaseApplied(s.pool, order.id);
    const after = (await findUnappliedReleases(s.pool)).filter((r) => r.orderId === order.id);
    expect(after).toEqual([]);
  });
});
