import type { Redis } from '../redis/client.js';
import { OrderStatus, type OrderEvent } from '../domain/order-status.js';
import { orderEventsChannel } from '../redis/keys.js';

/** Announces a status change to every API process (and from there to SSE clients). */
export async function publishOrderEvent(
  redis: Redis,
  prefix: string,
  event: OrderEvent,
): Promise<void> {
  await redis.publish(orderEventsChannel(prefix), JSON.stringify(event));
}

/**
 * `order_persisted` for each order the order worker just committed, in one pipeline (one write
 * for a whole batch: a drain publishes one event per order). Never throws: a missed
 * notification is only late news (GET /order/:id answers `pending` all the same).
 */
export async function announcePersisted(
  redis: Redis,
  prefix: string,
  orders: readonly { id: string; userId: string; productId: string }[],
): Promise<void> {
  if (orders.length === 0) return;
  const at = Date.now();
  const channel = orderEventsChannel(prefix);
  const pipeline = redis.pipeline();
  for (const order of orders) {
    const event: OrderEvent = {
      orderId: order.id,
      userId: order.userId,
      productId: order.productId,
      status: OrderStatus.Pending,
      at,
    };
    pipeline.publish(channel, JSON.stringify(event));
  }
  await pipeline.exec().catch(() => undefined);
}
