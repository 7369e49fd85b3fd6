import { EventEmitter } from 'node:events';
import { connectRedis, type Redis } from '../redis/client.js';
import { productOfStockChannel, stockChannelPattern } from '../redis/keys.js';

export interface StockFeedEvents {
  /** Units left in a product after a change (buy, release, seed). */
  stock: [productId: string, remaining: number];
  /** The subscription was lost and re-established: changes may have been missed. */
  resync: [];
}

/**
 * The process's one Redis subscription: PSUBSCRIBE to every product's stock channel under the
 * prefix, fanned out in memory (sold-out cache, SSE clients), never one connection per client.
 */
export class StockFeed extends EventEmitter<StockFeedEvents> {
  private constructor(
    private readonly subscriber: Redis,
    readonly prefix: string,
  ) {
    super();
    this.setMaxListeners(0);
  }

  static async open(redisUrl: string, prefix: string): Promise<StockFeed> {
    const subscriber = await connectRedis(redisUrl, { name: 'fsale-stock-feed', persistent: true });
    const feed = new StockFeed(subscriber, prefix);
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const productId = productOfStockChannel(prefix, channel);
      const remaining = Number(message);
      if (productId !== undefined && Number.isFinite(remaining)) {
        feed.emit('stock', productId, remaining);
      }
    });
    let connectedOnce = false;
    subscriber.on('ready', () => {
      // ioredis re-subscribes by itself after a reconnect; what was published meanwhile is lost.
      if (connectedOnce) feed.emit('resync');
      connectedOnce = true;
    });
    await subscriber.psubscribe(stockChannelPattern(prefix));
    connectedOnce = true;
    return feed;
  }

  close(): void {
    this.removeAllListeners();
    this.subscriber.disconnect();
  }
}
