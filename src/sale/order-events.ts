import type { Redis } from '../redis/client.js';
import { OrderStatus, type OrderEvent } from '../domain/order-status.js';
import { orderEventsChannel } from '../redis/keys.js';

/**
 * Announces a status change to every API process (and from there to SSE clients), on the
 * product's order channel (sharded pub/sub: on a cluster only the node owning the product's
 * slot carries it).
 */
export async function publishOrderEvent(
  redis: Redis,
  prefix: string,
  event: OrderEvent,
): Promise<void> {
  await redis.spublish(orderEventsChannel(prefix, event.productId), JSON.stringify(event));
}

/**
 * `order_persisted` for each order the order worker just committed, one pipeline per product
 * (a pipeline on a cluster stays within one slot; a drain publishes one event per order).
 * Never throws: a missed notification is only late news (GET /order/:id answers `pending` all
 * the same).
 */
export async function announcePersisted(
  redis: Redis,
  prefix: string,
  orders: readonly { id: string; userId: string; productId: string }[],
): Promise<void> {
  const at = Date.now();
  const byProduct = new Map<string, ReturnType<Redis['pipeline']>>();
  for (const order of orders) {
    let pipeline = byProduct.get(order.productId);
    if (pipeline === undefined) {
      pipeline = redis.pipeline();
      byProduct.set(order.productId, pipeline);
    }
    const event: OrderEvent = {
      orderId: order.id,
      userId: order.userId,
      productId: order.productId,
      status: OrderStatus.Pending,
      at,
    };
    pipeline.spublish(orderEventsChannel(prefix, order.productId), JSON.stringify(event));
  }
  await Promise.all([...byProduct.values()].map((p) => p.exec().catch(() => undefined)));
}
