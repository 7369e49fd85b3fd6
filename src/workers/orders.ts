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
import { hostname } from 'node:os';
import hdr from 'hdr-histogram-js';
import type { Redis } from 'ioredis';
import type { Pool } from '../db/pool.js';
import { describe, UsageError } from '../domain/errors.js';
import { parseOrderEntry, type OrderEntry } from '../domain/order-entry.js';
import { OrderStatus } from '../domain/order-status.js';
import {
  idempotencyKey,
  ORDER_GROUP,
  PRODUCT_ID,
  productKeys,
  productsKey,
  type ProductKeys,
} from '../redis/keys.js';
import { acceptedRecord } from '../sale/buy.js';
import { ensureOrderGroup } from '../sale/seed.js';
import { deadLetterFields, DeadLetterReason } from './dead-letter.js';
import { backoffMs, isDataError, isStockGuardViolation } from './failures.js';
import {
  entryTime,
  parseAutoClaimReply,
  parsePendingReply,
  parseReadReply,
  type StreamEntry,
} from './stream-replies.js';

export interface OrderWorkerContext {
  pool: Pool;
  /**
   * A connection for this worker alone: it issues blocking XREADGROUP calls on it, which
   * would stall anything else sharing it. Create it with `persistent: true`.
   */
  redis: Redis;
  keyPrefix: string;
  /** One line per notable event (outage, recovery, dead letter). Default: stderr. */
  log?: ((line: string) => void) | undefined;
}

/**
 * Test-only crash points (`FSALE_FAULT=orders:<point>`): the worker kills itself with
 * SIGKILL there, on the first batch, to prove a crash at that moment loses and duplicates
 * nothing.
 */
export type OrderWorkerFault = 'before-commit' | 'after-commit';

export interface OrderWorkerOptions {
  /** Consumer name in the group; unique per process. Default `<hostname>-<pid>`. */
  consumer?: string | undefined;
  /** COUNT of each XREADGROUP, per stream. */
  batch?: number | undefined;
  /**
   * Batches in flight at once (each in its own PG transaction): the next batch is read and
   * inserted while the previous one commits and is acknowledged.
   */
  concurrency?: number | undefined;
  /** How long one XREADGROUP waits for new entries. Bounds how long `stop()` takes when idle. */
  blockMs?: number | undefined;
  /** Entries pending longer than this are taken over with XAUTOCLAIM (their consumer died). */
  claimIdleMs?: number | undefined;
  /**
   * An entry delivered more often than this is persisted in a transaction of its own, apart
   * from its batch, and dead-lettered only if PostgreSQL refuses its data.
   */
  maxDeliveries?: number | undefined;
  /** How often the set of products is re-read, to pick up newly seeded ones. */
  productsRefreshMs?: number | undefined;
  fault?: OrderWorkerFault | undefined;
  /** What a fault does; default: SIGKILL this process. */
  onFault?: ((fault: OrderWorkerFault) => void) | undefined;
}

export const ORDER_WORKER_DEFAULTS = {
  batch: 500,
  concurrency: 2,
  blockMs: 1_000,
  // Comfortably above the worst batch time (tens of milliseconds, seconds in a bad moment):
  // claiming from a live but slow consumer is harmless (persisting is idempotent) but wasteful.
  claimIdleMs: 30_000,
  maxDeliveries: 5,
  productsRefreshMs: 1_000,
} as const;

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
  /** Finishes (commits and acknowledges) the batch in hand, then stops. */
  stop(): Promise<void>;
  /** Settles when the worker has stopped. */
  readonly done: Promise<void>;
}

/** Reads `FSALE_FAULT`: `orders:before-commit` or `orders:after-commit`; others are not ours. */
export function orderWorkerFault(value: string | undefined): OrderWorkerFault | undefined {
  if (value === 'orders:before-commit') return 'before-commit';
  if (value === 'orders:after-commit') return 'after-commit';
  return undefined;
}

export function defaultConsumerName(): string {
  return `${hostname()}-${process.pid}`;
}

export function startOrderWorker(
  ctx: OrderWorkerContext,
  options: OrderWorkerOptions = {},
): OrderWorker {
  return new OrderStreamConsumer(ctx, options);
}

// One statement: insert the batch, then take the stock of the rows actually inserted (a
// redelivered row conflicts and takes nothing). The CHECK on products.remaining is the
// PG-side stock guard: if Redis ever accepted more than PostgreSQL holds, this fails.
// `ON CONFLICT DO NOTHING` has no target on purpose: a row conflicting on the unique
// (product_id, user_id, idempotency_key) under a different id is skipped too instead of
// failing the batch; the worker then finds it below and dead-letters it.
const PERSIST_ORDERS = `
WITH inserted AS (
  INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
  SELECT t.id, t.product_id, t.user_id, t.qty, $7, t.idempotency_key,
         timestamptz 'epoch' + t.accepted_ms * interval '1 millisecond'
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::bigint[])
       AS t(id, product_id, user_id, qty, idempotency_key, accepted_ms)
  ON CONFLICT DO NOTHING
  RETURNING id, product_id, qty
), taken AS (
  UPDATE products p
  SET remaining = p.remaining - s.qty, updated_at = now()
  FROM (SELECT product_id, sum(qty)::int AS qty FROM inserted GROUP BY product_id) s
  WHERE p.id = s.product_id
  RETURNING p.id
)
SELECT id::text AS id FROM inserted`;

// For the rows the insert skipped: already there (a redelivery), or is the (product, user,
// key) held by another order? A new statement in READ COMMITTED sees rows committed by a
// concurrent worker whose insert ours waited for.
const CLASSIFY_SKIPPED = `
SELECT t.id::text AS id,
       EXISTS (SELECT 1 FROM orders o WHERE o.id = t.id) AS persisted,
       h.id::text AS holder, h.qty AS holder_qty
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
     AS t(id, product_id, user_id, idempotency_key)
LEFT JOIN orders h ON h.product_id = t.product_id AND h.user_id = t.user_id
                  AND h.idempotency_key = t.idempotency_key`;

type Service = 'Redis' | 'PostgreSQL';

interface ProductStream {
  productId: string;
  stream: string;
  keys: ProductKeys;
}

/** An entry delivered to this consumer, with where it came from and how often it was delivered. */
interface Delivery {
  product: ProductStream;
  entry: StreamEntry;
  deliveries: number;
}

interface DeadLettered {
  delivery: Delivery;
  reason: DeadLetterReason;
  detail: string;
}

/** The order that holds the skipped order's (product, user, idempotency key). */
interface Holder {
  holder: string;
  holderQty: number;
}

type PersistOutcome = 'inserted' | 'duplicate' | Holder;

/**
 * An order accepted again under a key another order holds: the buy script found no record
 * for the key (it expired under an older version, or Redis lost it) and reserved a second
 * unit. The first order is the key's answer; this one is released.
 */
interface Superseded extends Holder {
  delivery: Delivery;
  order: OrderEntry;
}

interface BatchOutcome {
  inserted: number;
  duplicates: number;
  dead: DeadLettered[];
  superseded: Superseded[];
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
  private readonly log: (line: string) => void;

  private streams = new Map<string, ProductStream>();
  /** Streams whose own pending list (entries delivered to this consumer name) must be re-read. */
  private readonly history = new Set<string>();
  private regroup = false;
  private nextRefreshAt = 0;
  private nextClaimAt = 0;
  private stopping = false;
  private readonly wakers = new Set<() => void>();
  private readonly inFlight = new Set<Promise<void>>();
  private faultFired = false;
  private readonly failing = new Map<
    Service,
    { since: number; message: string; attempt: number }
  >();

  private readonly counters = {
    persisted: 0,
    duplicates: 0,
    deadLettered: 0,
    superseded: 0,
    claimed: 0,
    batches: 0,
    retries: 0,
    lagMs: 0,
  };
  private readonly batchTimes = hdr.build({ lowestDiscernibleValue: 1, autoResize: true });

  constructor(
    private readonly ctx: OrderWorkerContext,
    private readonly options: OrderWorkerOptions,
  ) {
    const positive = (name: string, value: number | undefined, fallback: number): number => {
      const chosen = value ?? fallback;
      if (!Number.isSafeInteger(chosen) || chosen < 1) {
        throw new UsageError(`${name} must be a positive integer, got ${chosen}`);
      }
      return chosen;
    };
    const d = ORDER_WORKER_DEFAULTS;
    this.consumer = options.consumer ?? defaultConsumerName();
    this.batch = positive('batch', options.batch, d.batch);
    this.concurrency = positive('concurrency', options.concurrency, d.concurrency);
    this.blockMs = positive('block-ms', options.blockMs, d.blockMs);
    this.claimIdleMs = positive('claim-idle-ms', options.claimIdleMs, d.claimIdleMs);
    this.maxDeliveries = positive('max-deliveries', options.maxDeliveries, d.maxDeliveries);
    this.productsRefreshMs = positive(
      'products-refresh-ms',
      options.productsRefreshMs,
      d.productsRefreshMs,
    );
    // Checking more often than the idle bound is cheap (one XAUTOCLAIM per stream) and takes
    // over a dead consumer's entries soon after they become eligible.
    this.claimEveryMs = Math.max(50, Math.min(5_000, Math.floor(this.claimIdleMs / 2)));
    this.log = ctx.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.done = this.run();
  }

  stats(): OrderWorkerStats {
    const ms = (micros: number) => Math.round(micros / 10) / 100;
    const timed = this.batchTimes.totalCount > 0;
    return {
      consumer: this.consumer,
      streams: this.streams.size,
      ...this.counters,
      batchP50Ms: timed ? ms(this.batchTimes.getValueAtPercentile(50)) : 0,
      batchP99Ms: timed ? ms(this.batchTimes.getValueAtPercentile(99)) : 0,
      batchMaxMs: timed ? ms(this.batchTimes.maxValue) : 0,
    };
  }

  /** A method, not a field read: it changes while a batch is awaited, which narrowing ignores. */
  private stopped(): boolean {
    return this.stopping;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of this.wakers) wake();
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopped()) {
      try {
        if (this.regroup || Date.now() >= this.nextRefreshAt) await this.refreshStreams();
        if (this.streams.size === 0) {
          await this.pause(Math.min(this.blockMs, this.productsRefreshMs));
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
        this.recovered('Redis');
      } catch (error) {
        if (error instanceof Error && error.message.includes('NOGROUP')) {
          // A stream (and its group) was deleted and recreated, e.g. by `seed --reset`.
          this.regroup = true;
        }
        // A reply lost with the connection left entries in our pending list that '>' will
        // never deliver again: read our own pending list first when we are back.
        for (const stream of this.streams.keys()) this.history.add(stream);
        await this.failed('Redis', error);
      }
    }
    await this.settle();
  }

  /** Waits for every batch in flight to be acknowledged (or given up while stopping). */
  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((error: unknown) => this.log(`batch failed unexpectedly: ${describe(error)}`))
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async refreshStreams(): Promise<void> {
    const { redis, keyPrefix } = this.ctx;
    const ids = (await redis.smembers(productsKey(keyPrefix)))
      .filter((id) => PRODUCT_ID.test(id))
      .sort();
    const next = new Map<string, ProductStream>();
    for (const productId of ids) {
      const keys = productKeys(keyPrefix, productId);
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
    this.streams = next;
    for (const stream of this.history) if (!next.has(stream)) this.history.delete(stream);
    this.regroup = false;
    this.nextRefreshAt = Date.now() + this.productsRefreshMs;
  }

  /** Entries already delivered to this consumer name and never acknowledged (history read). */
  private async readOwnPending(): Promise<void> {
    const streams = [...this.history];
    const reply = await this.ctx.redis.xreadgroup(
      'GROUP',
      ORDER_GROUP,
      this.consumer,
      'COUNT',
      this.batch,
      'STREAMS',
      ...streams,
      ...streams.map(() => '0'),
    );
    const read = parseReadReply(reply);
    const deliveries: Delivery[] = [];
    for (const { stream, entries } of read) {
      if (entries.length === 0) this.history.delete(stream);
      else deliveries.push(...(await this.withDeliveryCounts(stream, entries)));
    }
    if (deliveries.length > 0) await this.handle(deliveries, false);
  }

  private async readNew(): Promise<void> {
    while (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    const streams = [...this.streams.keys()];
    const ids = streams.map(() => '>');
    // Block only when nothing is in flight: the acknowledgements of batches in flight share
    // this connection and would otherwise wait behind a blocked read.
    const idle = this.inFlight.size === 0;
    const { redis } = this.ctx;
    const reply = idle
      ? await redis.xreadgroup(
          'GROUP',
          ORDER_GROUP,
          this.consumer,
          'COUNT',
          this.batch,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          ...streams,
          ...ids,
        )
      : await redis.xreadgroup(
          'GROUP',
          ORDER_GROUP,
          this.consumer,
          'COUNT',
          this.batch,
          'STREAMS',
          ...streams,
          ...ids,
        );
    const deliveries: Delivery[] = [];
    for (const { stream, entries } of parseReadReply(reply)) {
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
        const reply = parseAutoClaimReply(
          await this.ctx.redis.xautoclaim(
            product.stream,
            ORDER_GROUP,
            this.consumer,
            this.claimIdleMs,
            cursor,
            'COUNT',
            this.batch,
          ),
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
      } while (cursor !== '0-0' && !this.stopped());
    }
  }

  private async withDeliveryCounts(stream: string, entries: StreamEntry[]): Promise<Delivery[]> {
    const product = this.streams.get(stream);
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (product === undefined || first === undefined || last === undefined) return [];
    const pending = parsePendingReply(
      await this.ctx.redis.xpending(
        stream,
        ORDER_GROUP,
        first.id,
        last.id,
        entries.length + 100,
        this.consumer,
      ),
    );
    const counts = new Map(pending.map((p) => [p.id, p.deliveries]));
    // An entry missing from our pending list was acknowledged meanwhile; count it once.
    return entries.map((entry) => ({ product, entry, deliveries: counts.get(entry.id) ?? 1 }));
  }

  /** Persist, dead-letter what cannot be persisted, acknowledge; retries outages in place. */
  private async handle(deliveries: Delivery[], fresh: boolean): Promise<void> {
    const started = performance.now();
    const dead: DeadLettered[] = [];
    const candidates: Array<{ delivery: Delivery; order: OrderEntry }> = [];
    const overDelivered: Array<{ delivery: Delivery; order: OrderEntry }> = [];
    for (const delivery of deliveries) {
      const { entry } = delivery;
      if (entry.fields === null) {
        dead.push({
          delivery,
          reason: DeadLetterReason.Deleted,
          detail: 'entry deleted from the order stream before it was persisted',
        });
        continue;
      }
      const order = parseOrderEntry(delivery.product.productId, entry.fields);
      if (order === undefined) {
        // Retrying cannot make it parseable: dead-letter on first sight.
        dead.push({
          delivery,
          reason: DeadLetterReason.Unparseable,
          detail: 'not an order entry (fields id, user, qty, key, at)',
        });
      } else if (delivery.deliveries > this.maxDeliveries) {
        overDelivered.push({ delivery, order });
      } else {
        candidates.push({ delivery, order });
      }
    }

    const outcome = await this.retrying('PostgreSQL', () =>
      this.persist(candidates, overDelivered),
    );
    if (outcome === undefined) return; // stopping during an outage: left pending, redelivered later
    dead.push(...outcome.dead);
    const superseded = await this.retrying('Redis', () =>
      this.reservedByBuy(outcome.superseded, dead),
    );
    if (superseded === undefined) return;
    const acked = await this.retrying('Redis', () =>
      this.acknowledge(deliveries, dead, superseded),
    );
    if (acked === undefined) return;

    this.counters.batches += 1;
    this.counters.persisted += outcome.inserted;
    this.counters.duplicates += outcome.duplicates;
    this.counters.deadLettered += dead.length;
    this.counters.superseded += superseded.length;
    this.batchTimes.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)));
    if (fresh) {
      let newest = 0;
      for (const { entry } of deliveries) newest = Math.max(newest, entryTime(entry.id));
      this.counters.lagMs = Math.max(0, Date.now() - newest);
    }
    for (const { delivery, reason, detail } of dead) {
      this.log(
        `dead-lettered ${delivery.product.stream} ${delivery.entry.id} (${reason}: ${detail})`,
      );
    }
    for (const { order, holder } of superseded) {
      this.log(
        `order ${order.id} superseded by ${holder}, which holds its idempotency key: reservation released`,
      );
    }
  }

  private async persist(
    candidates: Array<{ delivery: Delivery; order: OrderEntry }>,
    overDelivered: Array<{ delivery: Delivery; order: OrderEntry }>,
  ): Promise<BatchOutcome> {
    const result: BatchOutcome = { inserted: 0, duplicates: 0, dead: [], superseded: [] };
    const tally = (delivery: Delivery, order: OrderEntry, outcome: PersistOutcome) => {
      if (outcome === 'inserted') result.inserted += 1;
      else if (outcome === 'duplicate') result.duplicates += 1;
      else result.superseded.push({ delivery, order, ...outcome });
    };
    let alone = overDelivered;
    if (candidates.length > 0) {
      try {
        const outcomes = await this.persistOrders(candidates.map((c) => c.order));
        candidates.forEach((c, i) => tally(c.delivery, c.order, outcomes[i] ?? 'duplicate'));
      } catch (error) {
        if (!isDataError(error)) throw error;
        this.log(
          `batch of ${candidates.length} refused by PostgreSQL (${describe(error)}); persisting its orders one by one`,
        );
        alone = [...candidates, ...overDelivered];
      }
    }
    // One transaction per order: for a batch PostgreSQL refused (find which row, and persist
    // every other), and for entries delivered too often (whatever keeps failing with them
    // fails alone). Only a data error dead-letters an order: deliveries pile up without any
    // fault of the entry's (workers claiming each other's entries through a PostgreSQL
    // outage), and an entry dead-lettered for that alone would be an accepted order lost.
    for (const { delivery, order } of alone) {
      try {
        const [outcome] = await this.persistOrders([order]);
        tally(delivery, order, outcome ?? 'duplicate');
      } catch (error) {
        if (!isDataError(error)) throw error;
        result.dead.push({
          delivery,
          reason: isStockGuardViolation(error)
            ? DeadLetterReason.StockGuard
            : DeadLetterReason.Rejected,
          detail: describe(error),
        });
      }
    }
    return result;
  }

  /**
   * One transaction: insert, take stock, COMMIT. Returns each order's outcome, in order.
   *
   * The COMMIT is durable (synchronous_commit stays on, also per transaction): the XACK that
   * follows it makes Redis forget the entries, so a commit that a PostgreSQL crash could
   * still undo (`SET LOCAL synchronous_commit = off` loses up to ~3 x wal_writer_delay of
   * commits) would lose accepted orders for good. Throughput comes from batching instead.
   */
  private async persistOrders(orders: OrderEntry[]): Promise<PersistOutcome[]> {
    const client = await this.ctx.pool.connect();
    // A connection lost between two statements is reported on the client, not on a query;
    // unheard, that event would crash the process. The next query fails and we retry.
    const lost = (): undefined => undefined;
    client.on('error', lost);
    let failure: unknown;
    try {
      await client.query('BEGIN');
      const inserted = await client.query<{ id: string }>({
        name: 'fsale-persist-orders',
        text: PERSIST_ORDERS,
        values: [
          orders.map((o) => o.id),
          orders.map((o) => o.productId),
          orders.map((o) => o.userId),
          orders.map((o) => o.qty),
          orders.map((o) => o.idempotencyKey),
          orders.map((o) => o.acceptedAt),
          OrderStatus.Pending,
        ],
      });
      const fresh = new Set(inserted.rows.map((row) => row.id));
      const outcomes: PersistOutcome[] = [];
      const skipped: OrderEntry[] = [];
      for (const order of orders) {
        // delete: an id appearing twice in one batch is inserted once, then a duplicate.
        if (fresh.delete(order.id)) outcomes.push('inserted');
        else {
          outcomes.push('duplicate');
          skipped.push(order);
        }
      }
      if (skipped.length > 0) {
        const found = await client.query<{
          id: string;
          persisted: boolean;
          holder: string | null;
          holder_qty: number | null;
        }>(CLASSIFY_SKIPPED, [
          skipped.map((o) => o.id),
          skipped.map((o) => o.productId),
          skipped.map((o) => o.userId),
          skipped.map((o) => o.idempotencyKey),
        ]);
        const byId = new Map(found.rows.map((row) => [row.id, row]));
        orders.forEach((order, i) => {
          if (outcomes[i] === 'inserted') return;
          const row = byId.get(order.id);
          if (row?.persisted === true) return;
          if (row?.holder == null || row.holder_qty === null) {
            // Neither inserted nor found (the conflicting row vanished meanwhile): retry.
            throw new Error(`order ${order.id} was skipped but not found; retrying the batch`);
          }
          outcomes[i] = { holder: row.holder, holderQty: row.holder_qty };
        });
      }
      this.fault('before-commit');
      await client.query('COMMIT');
      this.fault('after-commit');
      return outcomes;
    } catch (error) {
      failure = error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      // A connection that failed for any reason other than the data is not trusted again.
      client.off('error', lost);
      client.release(failure !== undefined && !isDataError(failure));
    }
  }

  /**
   * The orders among `candidates` whose unit the buy script reserved (its owner index names
   * the same user), which the worker may release. Any other entry holding a taken key did not
   * come from a buy (someone wrote to the stream): releasing it would create stock, so it is
   * dead-lettered into `dead` instead, for the audit to report.
   */
  private async reservedByBuy(
    candidates: Superseded[],
    dead: DeadLettered[],
  ): Promise<Superseded[]> {
    if (candidates.length === 0) return [];
    const owners = await Promise.all(
      candidates.map((c) => this.ctx.redis.hget(c.delivery.product.keys.owners, c.order.id)),
    );
    return candidates.filter((c, i) => {
      if (owners[i] === c.order.userId) return true;
      dead.push({
        delivery: c.delivery,
        reason: DeadLetterReason.IdempotencyConflict,
        detail: `order ${c.holder} already holds this (product, user, idempotency key), and no buy reserved this entry`,
      });
      return false;
    });
  }

  /**
   * Dead-letters, supersedes and acknowledges, atomically per stream (one MULTI per product).
   * A superseded order's reservation is released (idempotent per order id, so a redelivery
   * after a crash changes nothing), the key's record is restored to its holder's answer, and
   * the superseded id points at the holder for GET /order/:id.
   */
  private async acknowledge(
    deliveries: Delivery[],
    dead: DeadLettered[],
    superseded: Superseded[],
  ): Promise<true> {
    const byStream = new Map<
      ProductStream,
      { ids: string[]; dead: DeadLettered[]; superseded: Superseded[] }
    >();
    const slot = (product: ProductStream) => {
      let found = byStream.get(product);
      if (found === undefined) {
        found = { ids: [], dead: [], superseded: [] };
        byStream.set(product, found);
      }
      return found;
    };
    for (const { product, entry } of deliveries) slot(product).ids.push(entry.id);
    for (const letter of dead) slot(letter.delivery.product).dead.push(letter);
    for (const order of superseded) slot(order.delivery.product).superseded.push(order);
    const now = Date.now();
    await Promise.all(
      [...byStream].map(async ([product, { ids, dead: letters, superseded: replaced }]) => {
        const { keys } = product;
        const multi = this.ctx.redis.multi();
        for (const { order, holder, holderQty } of replaced) {
          multi.release(
            keys.stock,
            keys.bought,
            keys.released,
            keys.sale,
            order.id,
            order.userId,
            order.qty,
            keys.stockChannel,
          );
          multi.set(
            idempotencyKey(keys, order.userId, order.idempotencyKey),
            acceptedRecord(holder, order.productId, holderQty),
          );
          multi.hset(keys.superseded, order.id, holder);
        }
        for (const { delivery, reason, detail } of letters) {
          multi.xadd(
            keys.deadLetter,
            '*',
            ...deadLetterFields({
              origin: delivery.entry.id,
              reason,
              detail,
              deliveries: delivery.deliveries,
              consumer: this.consumer,
              at: now,
              fields: delivery.entry.fields,
            }),
          );
        }
        multi.xack(product.stream, ORDER_GROUP, ...ids);
        const results = await multi.exec();
        if (results === null) throw new Error(`MULTI on ${product.stream} was aborted`);
        for (const [error] of results) if (error !== null) throw error;
      }),
    );
    return true;
  }

  private fault(point: OrderWorkerFault): void {
    if (this.options.fault !== point || this.faultFired) return;
    this.faultFired = true;
    if (this.options.onFault !== undefined) this.options.onFault(point);
    else process.kill(process.pid, 'SIGKILL');
  }

  /** Runs `work` until it succeeds, with backoff; undefined if stopped while failing. */
  private async retrying<T>(service: Service, work: () => Promise<T>): Promise<T | undefined> {
    for (;;) {
      try {
        const result = await work();
        this.recovered(service);
        return result;
      } catch (error) {
        if (this.stopped()) {
          this.log(
            `stopping with a batch not ${service === 'Redis' ? 'acknowledged' : 'committed'}: ${describe(error)}; it stays pending and is redelivered`,
          );
          return undefined;
        }
        await this.failed(service, error);
        if (this.stopped()) return undefined;
      }
    }
  }

  private async failed(service: Service, error: unknown): Promise<void> {
    this.counters.retries += 1;
    const message = describe(error);
    const previous = this.failing.get(service);
    if (previous?.message !== message) {
      this.log(`${service} error: ${message}; retrying with backoff`);
    }
    const attempt = (previous?.attempt ?? 0) + 1;
    this.failing.set(service, { since: previous?.since ?? Date.now(), message, attempt });
    await this.pause(backoffMs(attempt));
  }

  private recovered(service: Service): void {
    const previous = this.failing.get(service);
    if (previous === undefined) return;
    this.failing.delete(service);
    this.log(`${service} recovered after ${((Date.now() - previous.since) / 1000).toFixed(1)} s`);
  }

  private pause(ms: number): Promise<void> {
    if (this.stopped()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}
