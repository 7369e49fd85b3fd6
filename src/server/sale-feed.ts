import { EventEmitter } from 'node:events';
import { connectRedis, type Redis } from '../redis/client.js';
import { parseOrderEvent, type OrderEvent } from '../domain/order-status.js';
import { orderEventsChannel, productOfStockChannel, stockChannelPattern } from '../redis/keys.js';

export interface SaleFeedEvents {
  /** Units left in a product after a change (buy, release, seed). */
  stock: [productId: string, remaining: number];
  /** An order changed status (persisted, paid, failed, needs reconciliation). */
  order: [event: OrderEvent];
  /** The subscription was lost and re-established: changes may have been missed. */
  resync: [];
}

/**
 * The process's one Redis subscription: every product's stock channel (PSUBSCRIBE) and the
 * order events channel under the prefix, fanned out in memory (sold-out cache, SSE clients),
 * never one Redis connection per client.
 */
export class SaleFeed extends EventEmitter<SaleFeedEvents> {
  private constructor(
    private readonly subscriber: Redis,
    readonly prefix: string,
  ) {
    super();
    this.setMaxListeners(0);
  }

  static async open(redisUrl: string, prefix: string): Promise<SaleFeed> {
    const subscriber = await connectRedis(redisUrl, { name: 'fsale-sale-feed', persistent: true });
    const feed = new SaleFeed(subscriber, prefix);
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const productId = productOfStockChannel(prefix, channel);
      const remaining = Number(message);
      if (productId !== undefined && Number.isFinite(remaining)) {
        feed.emit('stock', productId, remaining);
      }
    });
    const orders = orderEventsChannel(prefix);
    subscriber.on('message', (channel: string, message: string) => {
      const event = channel === orders ? parseOrderEvent(message) : undefined;
      if (event !== undefined) feed.emit('order', event);
    });
    let connectedOnce = false;
    subscriber.on('ready', () => {
      // ioredis re-subscribes by itself after a reconnect; what was published meanwhile is lost.
      if (connectedOnce) feed.emit('resync');
      connectedOnce = true;
    });
    await subscriber.psubscribe(stockChannelPattern(prefix));
    await subscriber.subscribe(orders);
    connectedOnce = true;
    return feed;
  }

  close(): void {
    this.removeAllListeners();
    this.subscriber.disconnect();
  }
}
