import { beforeAll, describe, expect, it } from 'vitest';
import { persistOrders } from '../../src/db/order-batch.js';
import { findOwnedOrder } from '../../src/db/orders.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { OrderStatus } from '../../src/domain/order-status.js';
import { seed } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// The owner's order lookup (src/db/orders.ts, behind GET /order/:id): another user's order
// reads exactly like an unknown id.

describe('findOwnedOrder', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'owned', stock: 10 });
  });

  it('finds an order for the user who placed it, and for nobody else', async () => {
    const acceptedAt = Date.parse('2030-01-02T03:04:05.678Z');
    const order = {
      id: newOrderId(),
      productId: 'owned',
      userId: 'owner',
      qty: 2,
      idempotencyKey: 'owned-key',
      acceptedAt,
    };
    expect(await persistOrders(s.pool, [order])).toEqual(['inserted']);

    const found = await findOwnedOrder(s.pool, order.id, 'owner');
    expect(found).toMatchObject({
      id: order.id,
      productId: 'owned',
      qty: 2,
      status: OrderStatus.Pending,
      acceptedAt: new Date(acceptedAt),
    });
    expect(found?.updatedAt).toBeInstanceOf(Date);
    expect(await findOwnedOrder(s.pool, order.id, 'someone-else')).toBeUndefined();
    expect(await findOwnedOrder(s.pool, newOrderId(), 'owner')).toBeUndefined();
  });
});
