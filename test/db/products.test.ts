import { beforeAll, describe, expect, it } from 'vitest';
import { persistOrders } from '../../src/db/order-batch.js';
import { transitionOrder } from '../../src/db/orders.js';
import { readProductSnapshot } from '../../src/db/products.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { OrderStatus } from '../../src/domain/order-status.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// The product page's read of PostgreSQL (src/db/products.ts): the row as seed wrote it, and
// the persisted orders counted by status in the same statement.

describe('readProductSnapshot', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('reads the product as seeded, with its orders counted by status', async () => {
    const startsAt = new Date('2031-02-03T04:05:06.000Z');
    await seed(s, {
      productId: 'snap',
      stock: 50,
      name: 'Snapshot lamp',
      priceCents: 1999,
      perUserLimit: 3,
      startsAt,
    });
    const before = await readProductSnapshot(s.pool, 'snap');
    expect(before).toEqual({
      id: 'snap',
      name: 'Snapshot lamp',
      priceCents: 1999,
      stockTotal: 50,
      perUserLimit: 3,
      startsAt,
      orders: {},
    });

    const orders = Array.from({ length: 5 }, (_, i) => ({
      id: newOrderId(),
      productId: 'snap',
      userId: `snap-user-${i}`,
      qty: 1,
      idempotencyKey: `snap-key-${i}`,
      acceptedAt: Date.now(),
    }));
    await persistOrders(s.pool, orders);
    for (const order of orders.slice(0, 2))
      expect(await transitionOrder(s.pool, order.id, OrderStatus.Pending, OrderStatus.Paid)).toBe(
        true,
      );
    const after = await readProductSnapshot(s.pool, 'snap');
    expect(after?.orders).toEqual({ [OrderStatus.Pending]: 3, [OrderStatus.Paid]: 2 });
    expect(after?.stockTotal).toBe(50);
  });

  it('reads nothing for a product that was never seeded', async () => {
    expect(await readProductSnapshot(s.pool, 'never-seeded')).toBeUndefined();
  });
});
