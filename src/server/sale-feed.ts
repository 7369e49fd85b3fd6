import { EventEmitter } from 'node:events';
import { connectRedis, isCluster, type Redis } from '../redis/client.js';
import { parseOrderEvent, type OrderEvent } from '../domain/order-status.js';
import { orderEventsChannel, parseStockMessage, type StockMessage } from '../redis/keys.js';
import {
  readLayout,
  readShardStocks,
  saleProductIds,
  unreceivedTransfers,
} from '../redis/sale-state.js';

export interface SaleFeedEvents {
  /**
   * Units left in a product after a change (buy, release, seed), summed over its shards, and
   * the units this process has heard accepted and released since it started.
   */
  stock: [productId: string, remaining: number, moves: StockMoves];
  /** An order changed status (persisted, paid, failed, needs reconciliation). */
  order: [event: OrderEvent];
  /** The subscription was lost and re-established: changes may have been missed. */
  resync: [];
}

/** Units accepted and released in a product, counted from its publishes as they are heard. */
export interface StockMoves {
  accepted: number;
  released: number;
}

/** A product whose channels this process subscribes to. */
interface Watched {
  /** Its shard count when its channels were chosen (a publish with another: a re-seed). */
  shards: number;
  channels: string[];
  /** Settles once every channel is subscribed. */
  ready: Promise<void>;
  subscribed: boolean;
}

/** What a sharded product's publishes add up to: units per shard, and units moving between. */
interface ShardedTotal {
  left: (number | undefined)[];
  moving: Map<string, number>;
  /** Transfers whose receive was heard before their lend (two nodes, two connections). */
  arrived: Set<string>;
}

/** Most transfer ids remembered as arrived before their lend, per product. */
const ARRIVED_KEPT = 1_024;

/**
 * The process's subscriptions to the sale's changes, fanned out in memory (sold-out cache, SSE
 * clients), never one Redis subscription per client. Every channel is sharded pub/sub
 * (SSUBSCRIBE) in its product's hash tag: on a Redis Cluster each one is carried only by the
 * master owning that slot, and the subscriber keeps one connection per master (ioredis moves
 * the subscriptions after a failover or a reshard). Sharded pub/sub has no patterns, so the
 * feed subscribes per product: every product seeded under the prefix, read at start and every
 * `refreshMs`, and at once when a request names a product it does not hear yet.
 */
export class SaleFeed extends EventEmitter<SaleFeedEvents> {
  private readonly watched = new Map<string, Watched>();
  /** Channel -> the product it belongs to, and whether it carries orders or stock. */
  private readonly channels = new Map<string, { productId: string; orders: boolean }>();
  private readonly totals = new Map<string, ShardedTotal>();
  private readonly moves = new Map<string, StockMoves>();
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly subscriber: Redis,
    readonly prefix: string,
    private readonly reader: Redis,
  ) {
    super();
    this.setMaxListeners(0);
    this.on('resync', () => this.totals.clear());
  }

  static async open(
    redisUrl: string,
    prefix: string,
    reader: Redis,
    refreshMs = 1_000,
  ): Promise<SaleFeed> {
    const subscriber = await connectRedis(redisUrl, {
      name: 'fsale-sale-feed',
      persistent: true,
      shardedSubscriber: true,
    });
    const feed = new SaleFeed(subscriber, prefix, reader);
    subscriber.on('smessage', (channel: string, message: string) =>
      feed.received(channel, message),
    );
    let opened = false;
    // ioredis subscribes again by itself after a reconnect (on a cluster, after a failover,
    // once the slot's new master is known); what was published meanwhile is lost.
    subscriber.on(isCluster(subscriber) ? 'subscribersReady' : 'ready', () => {
      if (opened) feed.emit('resync');
    });
    await feed.refresh();
    opened = true;
    feed.timer = setInterval(() => void feed.refresh().catch(() => undefined), refreshMs);
    feed.timer.unref();
    return feed;
  }

  /** The units accepted and released in the product that this process has heard of. */
  movesOf(productId: string): StockMoves {
    return { ...(this.moves.get(productId) ?? { accepted: 0, released: 0 }) };
  }

  /** Whether this process hears the product's changes (its channels are subscribed). */
  hears(productId: string): boolean {
    return this.watched.get(productId)?.subscribed === true;
  }

  /**
   * Subscribes to the product's channels unless it already does, and settles once they are
   * subscribed: a reader that then reads the current state misses no later change. For
   * products that exist only (callers check first): the feed keeps every product it watches.
   */
  watch(productId: string): Promise<void> {
    const watched = this.watched.get(productId);
    if (watched !== undefined) return watched.ready;
    return this.subscribe(productId);
  }

  /** Watches every product seeded under the prefix that it does not watch yet (one at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= saleProductIds(this.reader, this.prefix)
      .then((ids) => Promise.all(ids.map((id) => this.watch(id))))
      .then(() => undefined)
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** (Re)subscribes to the channels of the product's current layout, dropping others. */
  private async subscribe(productId: string): Promise<void> {
    const before = this.watched.get(productId);
    let settle!: { resolve: () => void; reject: (error: unknown) => void };
    const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    ready.catch(() => undefined);
    const entry: Watched = { shards: before?.shards ?? 0, channels: [], ready, subscribed: false };
    this.watched.set(productId, entry);
    try {
      const layout = await readLayout(this.reader, this.prefix, productId);
      const orders = orderEventsChannel(this.prefix, productId);
      // One SSUBSCRIBE per slot: shard 0's stock channel and the order channel share one.
      const groups = layout.shards.map((keys, shard) =>
        shard === 0 ? [keys.stockChannel, orders] : [keys.stockChannel],
      );
      const channels = groups.flat();
      for (const channel of channels) {
        this.channels.set(channel, { productId, orders: channel === orders });
      }
      await Promise.all(groups.map((group) => this.subscriber.ssubscribe(...group)));
      const dropped = (before?.channels ?? []).filter((channel) => !channels.includes(channel));
      for (const channel of dropped) this.channels.delete(channel);
      await Promise.all(dropped.map((channel) => this.subscriber.sunsubscribe(channel)));
      Object.assign(entry, { shards: layout.shards.length, channels, subscribed: true });
      this.totals.delete(productId);
      settle.resolve();
    } catch (error) {
      // Tried again by the next refresh or request.
      if (this.watched.get(productId) === entry) this.watched.delete(productId);
      settle.reject(error);
    }
    return ready;
  }

  private received(channel: string, message: string): void {
    const route = this.channels.get(channel);
    if (route === undefined) return;
    if (route.orders) {
      const event = parseOrderEvent(message);
      if (event !== undefined) this.emit('order', event);
      return;
    }
    const stock = parseStockMessage(message);
    if (stock === undefined) return;
    const { productId } = route;
    if (stock.sold !== undefined || stock.back !== undefined) {
      const moves = this.moves.get(productId) ?? { accepted: 0, released: 0 };
      moves.accepted += stock.sold ?? 0;
      moves.released += stock.back ?? 0;
      this.moves.set(productId, moves);
    }
    const watched = this.watched.get(productId);
    if (watched?.subscribed === true && watched.shards !== stock.shards) {
      // Seeded again with another shard count: its other shards have other channels.
      void this.subscribe(productId).catch(() => undefined);
    }
    if (stock.shards === 1) this.emit('stock', productId, stock.left, this.movesOf(productId));
    else this.shardChanged(productId, stock);
  }

  /**
   * A shard of a sharded product published its units: the product's total (shards plus units
   * moving between them) is emitted once every shard's is known. What is not known yet is read
   * once from Redis; a publish that arrives meanwhile is newer than that read and wins.
   */
  private shardChanged(productId: string, stock: StockMessage): void {
    let total = this.totals.get(productId);
    if (total?.left.length !== stock.shards) {
      total = {
        left: Array.from({ length: stock.shards }, () => undefined),
        moving: new Map(),
        arrived: new Set(),
      };
      this.totals.set(productId, total);
      void this.fill(productId, total);
    }
    total.left[stock.shard] = stock.left;
    const { transfer } = stock;
    if (transfer?.end === 'lent') {
      if (!total.arrived.delete(transfer.id)) total.moving.set(transfer.id, transfer.units);
    } else if (transfer?.end === 'received' && !total.moving.delete(transfer.id)) {
      total.arrived.add(transfer.id);
      if (total.arrived.size > ARRIVED_KEPT) {
        total.arrived.delete(total.arrived.values().next().value ?? '');
      }
    }
    this.emitTotal(productId, total);
  }

  private async fill(productId: string, total: ShardedTotal): Promise<void> {
    try {
      const layout = await readLayout(this.reader, this.prefix, productId);
      const [stocks, moving] = await Promise.all([
        readShardStocks(this.reader, layout),
        unreceivedTransfers(this.reader, layout),
      ]);
      if (stocks.length !== total.left.length) return;
      stocks.forEach((left, shard) => (total.left[shard] ??= left));
      for (const [id, units] of moving) {
        if (!total.arrived.has(id)) total.moving.set(id, units);
      }
      this.emitTotal(productId, total);
    } catch {
      if (this.totals.get(productId) === total) this.totals.delete(productId);
    }
  }

  private emitTotal(productId: string, total: ShardedTotal): void {
    if (this.totals.get(productId) !== total || total.left.some((left) => left === undefined)) {
      return;
    }
    let remaining = 0;
    for (const left of total.left) remaining += Math.max(0, left ?? 0);
    for (const units of total.moving.values()) remaining += units;
    this.emit('stock', productId, remaining, this.movesOf(productId));
  }

  close(): void {
    clearInterval(this.timer);
    this.removeAllListeners();
    this.subscriber.disconnect();
  }
}
