// The order worker: moves accepted orders from the products' Redis streams into PostgreSQL,
// exactly once in effect.
//
// Per batch: one PostgreSQL transaction inserts the orders (`ON CONFLICT DO NOTHING`) and
// decrements `products.remaining` by the quantity of the rows actually inserted; COMMIT; then
// XACK. A crash anywhere redelivers the batch (to this consumer's own pending list, read
// again at start, or to another worker through XAUTOCLAIM), and the redelivery changes
// nothing that was already committed: rows conflict on their id and only inserted rows
// decrement the stock. Nothing is acknowledged before it is committed or dead-lettered, and
// nothing is ever trimmed from an order stream.
import hdr from 'hdr-histogram-js';
import { describe } from '../domain/errors.js';
import { readLayouts } from '../redis/sale-state.js';
import {
  claimIdleEntries,
  deliveryCounts,
  ensureOrderGroup,
  entryTime,
  readOrderGroup,
  settleEntries,
  type StreamEntry,
} from '../redis/streams.js';
import { announcePersisted } from '../sale/order-events.js';
import type { Stores } from '../stores.js';
import {
  persistSorted,
  reservedByBuy,
  settlementsByStream,
  sortDeliveries,
  type DeadLettered,
  type Delivery,
  type ProductStream,
  type Superseded,
} from './order-outcomes.js';
import {
  defaultConsumerName,
  ORDER_WORKER_DEFAULTS,
  type OrderWorkerFault,
  type OrderWorkerOptions,
} from './order-worker-settings.js';
import type { Logger } from 'pino';
import type { OrderWorkerMetrics } from './metrics.js';
import { integerOption, WorkerRuntime } from './runtime.js';

/**
 * `redis` is a connection for this worker alone: it issues blocking XREADGROUP calls on it,
 * which would stall anything else sharing it. Create it with `persistent: true`.
 */
export interface OrderWorkerContext extends Stores {
  /** One record per notable event (outage, recovery, dead letter). */
  log: Logger;
  /** Batch sizes and times, for the admin listener's /metrics. */
  metrics?: OrderWorkerMetrics | undefined;
}

export interface OrderWorkerStats {
  consumer: string;
  /** Product streams being consumed. */
  streams: number;
  /** Orders this worker inserted into PostgreSQL. */
  persisted: number;
  /** Entries already in PostgreSQL (a redelivery), acknowledged without change. */
  duplicates: number;
  deadLettered: number;
  /**
   * Orders accepted again under an idempotency key that an earlier order holds (its Redis
   * record was lost): released, and answered by the earlier order.
   */
  superseded: number;
  /** Entries taken over from idle consumers with XAUTOCLAIM. */
  claimed: number;
  batches: number;
  /** Failed attempts (Redis or PostgreSQL unreachable, deadlock, ...) that were retried. */
  retries: number;
  /** Age of the newest entry of the last batch when it was committed; 0 when caught up. */
  lagMs: number;
  /** Time from receiving a batch to acknowledging it. */
  batchP50Ms: number;
  batchP99Ms: number;
  batchMaxMs: number;
}

export interface OrderWorker {
  readonly consumer: string;
  stats(): OrderWorkerStats;
  /** How long its loop has gone without progress (WorkerRuntime.sinceProgressMs). */
  sinceProgressMs(): number;
  /** Finishes (commits and acknowledges) the batch in hand, then stops. */
  stop(): Promise<void>;
  /** Settles when the worker has stopped. */
  readonly done: Promise<void>;
}

export function startOrderWorker(
  ctx: OrderWorkerContext,
  options: OrderWorkerOptions = {},
): OrderWorker {
  return new OrderStreamConsumer(ctx, options);
}

class OrderStreamConsumer implements OrderWorker {
  readonly consumer: string;
  readonly done: Promise<void>;
  private readonly batch: number;
  private readonly concurrency: number;
  private readonly blockMs: number;
  private readonly claimIdleMs: number;
  private readonly claimEveryMs: number;
  private readonly maxDeliveries: number;
  private readonly productsRefreshMs: number;
  private readonly runtime: WorkerRuntime;

  private streams = new Map<string, ProductStream>();
  /** Streams whose own pending list (entries delivered to this consumer name) must be re-read. */
  private readonly history = new Set<string>();
  private regroup = false;
  private nextRefreshAt = 0;
  private nextClaimAt = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private faultFired = false;

  private readonly counters = {
    persisted: 0,
    duplicates: 0,
    deadLettered: 0,
    superseded: 0,
    claimed: 0,
    batches: 0,
    lagMs: 0,
  };
  private readonly batchTimes = hdr.build({ lowestDiscernibleValue: 1, autoResize: true });

  constructor(
    private readonly ctx: OrderWorkerContext,
    private readonly options: OrderWorkerOptions,
  ) {
    const d = ORDER_WORKER_DEFAULTS;
    this.consumer = options.consumer ?? defaultConsumerName();
    this.batch = integerOption('--batch', options.batch, d.batch);
    this.concurrency = integerOption('--concurrency', options.concurrency, d.concurrency);
    this.blockMs = integerOption('--block', options.blockMs, d.blockMs);
    this.claimIdleMs = integerOption('--claim-idle', options.claimIdleMs, d.claimIdleMs);
    this.maxDeliveries = integerOption('--max-deliveries', options.maxDeliveries, d.maxDeliveries);
    this.productsRefreshMs = integerOption(
      'productsRefreshMs',
      options.productsRefreshMs,
      d.productsRefreshMs,
    );
    // Checking more often than the idle bound is cheap (one XAUTOCLAIM per stream) and takes
    // over a dead consumer's entries soon after they become eligible.
    this.claimEveryMs = Math.max(50, Math.min(5_000, Math.floor(this.claimIdleMs / 2)));
    this.runtime = new WorkerRuntime(ctx.log);
    this.done = this.run();
  }

  stats(): OrderWorkerStats {
    const ms = (micros: number) => Math.round(micros / 10) / 100;
    const timed = this.batchTimes.totalCount > 0;
    return {
      consumer: this.consumer,
      streams: this.streams.size,
      ...this.counters,
      retries: this.runtime.retries,
      batchP50Ms: timed ? ms(this.batchTimes.getValueAtPercentile(50)) : 0,
      batchP99Ms: timed ? ms(this.batchTimes.getValueAtPercentile(99)) : 0,
      batchMaxMs: timed ? ms(this.batchTimes.maxValue) : 0,
    };
  }

  async stop(): Promise<void> {
    this.runtime.requestStop();
    await this.done;
  }

  sinceProgressMs(): number {
    return this.runtime.sinceProgressMs();
  }

  private async run(): Promise<void> {
    const { runtime } = this;
    while (!runtime.stopping()) {
      runtime.beat();
      try {
        if (this.regroup || Date.now() >= this.nextRefreshAt) await this.refreshStreams();
        if (this.streams.size === 0) {
          await runtime.pause(Math.min(this.blockMs, this.productsRefreshMs));
          continue;
        }
        if (this.history.size > 0) {
          await this.settle();
          await this.readOwnPending();
        } else if (Date.now() >= this.nextClaimAt) {
          // Claims and history reads run alone: they must not see (and re-handle) entries
          // of a batch in flight as pending.
          await this.settle();
          await this.claimIdle();
          this.nextClaimAt = Date.now() + this.claimEveryMs;
        } else {
          await this.readNew();
        }
        runtime.recovered('Redis');
      } catch (error) {
        if (error instanceof Error && error.message.includes('NOGROUP')) {
          // A stream (and its group) was deleted and recreated, e.g. by `seed --reset`.
          this.regroup = true;
        }
        // A reply lost with the connection left entries in our pending list that '>' will
        // never deliver again: read our own pending list first when we are back.
        for (const stream of this.streams.keys()) this.history.add(stream);
        await runtime.failed('Redis', error);
      }
    }
    await this.settle();
  }

  /** Waits for every batch in flight to be acknowledged (or given up while stopping). */
  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private track(work: Promise<void>): void {
    const tracked: Promise<void> = this.runtime
      .inFlight(work)
      .catch((error: unknown) =>
        this.runtime.log.error({ err: error }, `batch failed unexpectedly: ${describe(error)}`),
      )
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async refreshStreams(): Promise<void> {
    const { redis, keyPrefix } = this.ctx;
    const next = new Map<string, ProductStream>();
    // One stream per shard of each product; each shard's entries are settled on that shard.
    for (const { productId, shards } of await readLayouts(redis, keyPrefix)) {
      for (const keys of shards) {
        const known = this.streams.get(keys.orders);
        if (known !== undefined && !this.regroup) {
          next.set(keys.orders, known);
          continue;
        }
        await ensureOrderGroup(redis, keys.orders);
        next.set(keys.orders, { productId, stream: keys.orders, keys });
        // A consumer name reused across restarts may own entries there already.
        this.history.add(keys.orders);
      }
    }
    this.streams = next;
    for (const stream of this.history) if (!next.has(stream)) this.history.delete(stream);
    this.regroup = false;
    this.nextRefreshAt = Date.now() + this.productsRefreshMs;
  }

  /** Entries already delivered to this consumer name and never acknowledged (history read). */
  private async readOwnPending(): Promise<void> {
    const read = await readOrderGroup(this.ctx.redis, {
      consumer: this.consumer,
      streams: [...this.history],
      count: this.batch,
      from: 'own',
    });
    const deliveries: Delivery[] = [];
    for (const { stream, entries } of read) {
      if (entries.length === 0) this.history.delete(stream);
      else deliveries.push(...(await this.withDeliveryCounts(stream, entries)));
    }
    if (deliveries.length > 0) await this.handle(deliveries, false);
  }

  private async readNew(): Promise<void> {
    while (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    // Block only when nothing is in flight: the acknowledgements of batches in flight share
    // this connection and would otherwise wait behind a blocked read.
    const idle = this.inFlight.size === 0;
    const read = await readOrderGroup(this.ctx.redis, {
      consumer: this.consumer,
      streams: [...this.streams.keys()],
      count: this.batch,
      from: 'new',
      blockMs: idle ? this.blockMs : undefined,
    });
    const deliveries: Delivery[] = [];
    for (const { stream, entries } of read) {
      const product = this.streams.get(stream);
      if (product === undefined) continue;
      for (const entry of entries) deliveries.push({ product, entry, deliveries: 1 });
    }
    if (deliveries.length > 0) this.track(this.handle(deliveries, true));
    // Caught up while batches are in flight: wait for one rather than spin on empty reads.
    // (Checked again: it may have finished during the read, and racing nothing never ends.)
    else if (this.inFlight.size > 0) await Promise.race(this.inFlight);
    else this.counters.lagMs = 0;
  }

  /** Takes over entries idle longer than claimIdleMs, whoever owned them. */
  private async claimIdle(): Promise<void> {
    for (const product of this.streams.values()) {
      let cursor = '0-0';
      do {
        const reply = await claimIdleEntries(
          this.ctx.redis,
          product.stream,
          this.consumer,
          this.claimIdleMs,
          cursor,
          this.batch,
        );
        cursor = reply.next;
        const deliveries = await this.withDeliveryCounts(product.stream, reply.entries);
        // Redis already removed deleted entries from the pending list; report them anyway.
        for (const id of reply.deleted) {
          deliveries.push({ product, entry: { id, fields: null }, deliveries: 0 });
        }
        if (deliveries.length > 0) {
          this.counters.claimed += reply.entries.length;
          await this.handle(deliveries, false);
        }
      } while (cursor !== '0-0' && !this.runtime.stopping());
    }
  }

  private async withDeliveryCounts(stream: string, entries: StreamEntry[]): Promise<Delivery[]> {
    const product = this.streams.get(stream);
    if (product === undefined || entries.length === 0) return [];
    const counts = await deliveryCounts(this.ctx.redis, stream, this.consumer, entries);
    // An entry missing from our pending list was acknowledged meanwhile; count it once.
    return entries.map((entry) => ({ product, entry, deliveries: counts.get(entry.id) ?? 1 }));
  }

  /** Persist, dead-letter what cannot be persisted, acknowledge; retries outages in place. */
  private async handle(deliveries: Delivery[], fresh: boolean): Promise<void> {
    const started = performance.now();
    const { runtime } = this;
    const sorted = sortDeliveries(deliveries, this.maxDeliveries);
    const dead = sorted.dead;
    const outcome = await runtime.retrying('PostgreSQL', 'a batch not committed', () =>
      persistSorted(this.ctx.pool, sorted, runtime.log, (point) => this.fault(point)),
    );
    if (outcome === undefined) return; // stopping during an outage: left pending, redelivered later
    dead.push(...outcome.dead);
    const superseded = await runtime.retrying('Redis', 'a batch not acknowledged', () =>
      reservedByBuy(this.ctx.redis, outcome.superseded, dead),
    );
    if (superseded === undefined) return;
    const acked = await runtime.retrying('Redis', 'a batch not acknowledged', () =>
      this.acknowledge(deliveries, dead, superseded),
    );
    if (acked === undefined) return;

    this.counters.batches += 1;
    this.counters.persisted += outcome.inserted;
    this.counters.duplicates += outcome.duplicates;
    this.counters.deadLettered += dead.length;
    this.counters.superseded += superseded.length;
    const elapsedMs = performance.now() - started;
    this.batchTimes.recordValue(Math.max(1, Math.round(elapsedMs * 1000)));
    this.ctx.metrics?.batchDone(deliveries.length, elapsedMs / 1000);
    if (fresh) {
      let newest = 0;
      for (const { entry } of deliveries) newest = Math.max(newest, entryTime(entry.id));
      this.counters.lagMs = Math.max(0, Date.now() - newest);
    }
    for (const { delivery, reason, detail } of dead) {
      runtime.log.warn(
        { stream: delivery.product.stream, entry: delivery.entry.id, reason },
        `dead-lettered ${delivery.product.stream} ${delivery.entry.id} (${reason}: ${detail})`,
      );
    }
    for (const { order, holder } of superseded) {
      runtime.log.warn(
        { orderId: order.id, holder },
        `order ${order.id} superseded by ${holder}, which holds its idempotency key: reservation released`,
      );
    }
    // After the COMMIT, so a listener that reads the order finds it; fire and forget (a missed
    // notification is only late news) so that it never holds the batch.
    void announcePersisted(this.ctx.redis, this.ctx.keyPrefix, outcome.insertedOrders);
  }

  /** Dead-letters, supersedes and acknowledges, atomically per stream (one MULTI per product). */
  private async acknowledge(
    deliveries: Delivery[],
    dead: DeadLettered[],
    superseded: Superseded[],
  ): Promise<true> {
    const byStream = settlementsByStream(deliveries, dead, superseded, this.consumer, Date.now());
    await Promise.all(
      [...byStream].map(([product, settled]) =>
        settleEntries(this.ctx.redis, product.stream, product.keys, settled),
      ),
    );
    return true;
  }

  private fault(point: OrderWorkerFault): void {
    if (this.options.fault !== point || this.faultFired) return;
    this.faultFired = true;
    if (this.options.onFault !== undefined) this.options.onFault(point);
    else process.kill(process.pid, 'SIGKILL');
  }
}
