import { EventEmitter } from 'node:events';
import { connectRedis, type Redis } from '../redis/client.js';
import { parseOrderEvent, type OrderEvent } from '../domain/order-status.js';
import {
  orderEventsChannel,
  parseStockMessage,
  productOfStockChannel,
  stockChannelPattern,
} from '../redis/keys.js';
import { readLayout, readShardStocks } from '../redis/sale-state.js';

export interface SaleFeedEvents {
  /** Units left in a product after a change (buy, release, seed), summed over its shards. */
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
  /** A sharded product's units per shard, as last published (undefined: not heard yet). */
  private readonly shards = new Map<string, (number | undefined)[]>();

  private constructor(
    private readonly subscriber: Redis,
    readonly prefix: string,
    private readonly reader: Redis,
  ) {
    super();
    this.setMaxListeners(0);
    this.on('resync', () => this.shards.clear());
  }

  /**
   * A shard of a sharded product published its units: the product's total is emitted once
   * every shard's is known. The ones not heard from yet are read once from Redis; a publish
   * that arrives meanwhile is newer than that read and wins.
   */
  private shardChanged(productId: string, stock: { left: number; shard: number; shards: number }) {
    let known = this.shards.get(productId);
    if (known?.length !== stock.shards) {
      known = Array.from({ length: stock.shards }, () => undefined);
      this.shards.set(productId, known);
      const filling = known;
      void readLayout(this.reader, this.prefix, productId)
        .then((layout) => readShardStocks(this.reader, layout))
        .then((stocks) => {
          if (stocks.length !== filling.length) return;
          stocks.forEach((value, shard) => (filling[shard] ??= value));
          this.emitTotal(productId, filling);
        })
        .catch(() => this.shards.delete(productId));
    }
    known[stock.shard] = stock.left;
    this.emitTotal(productId, known);
  }

  private emitTotal(productId: string, known: (number | undefined)[]): void {
    if (this.shards.get(productId) !== known || known.some((left) => left === undefined)) return;
    this.emit(
      'stock',
      productId,
      known.reduce<number>((sum, left) => sum + Math.max(0, left ?? 0), 0),
    );
  }

  static async open(redisUrl: string, prefix: string, reader: Redis): Promise<SaleFeed> {
    const subscriber = await connectRedis(redisUrl, { name: 'fsale-sale-feed', persistent: true });
    const feed = new SaleFeed(subscriber, prefix, reader);
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const productId = productOfStockChannel(prefix, channel);
      const stock = parseStockMessage(message);
      if (productId === undefined || stock === undefined) return;
      if (stock.shards === 1) feed.emit('stock', productId, stock.left);
      else feed.shardChanged(productId, stock);
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
