import type { Redis } from 'ioredis';
import type { OrderEvent } from '../domain/order-status.js';
import { orderEventsChannel } from '../redis/keys.js';

/** Announces a status change to every API process (and from there to SSE clients). */
export async function publishOrderEvent(
  redis: Redis,
  prefix: string,
  event: OrderEvent,
): Promise<void> {
  await redis.publish(orderEventsChannel(prefix), JSON.stringify(event));
}
