// What the order worker does with a batch besides inserting it: which entries cannot be
// orders (dead letters), how a batch PostgreSQL refuses is narrowed down to its bad rows, and
// which orders are superseded by an earlier order holding their idempotency key. The consumer
// (src/workers/orders.ts) reads and acknowledges; this decides.
import type { Logger } from 'pino';
import type { Redis } from '../redis/client.js';
import { isDataError, isStockGuardViolation } from '../db/errors.js';
import {
  persistOrders,
  type Holder,
  type PersistCrashPoint,
  type PersistOutcome,
} from '../db/order-batch.js';
import type { Pool } from '../db/pool.js';
import { describe } from '../domain/errors.js';
import { parseOrderEntry, type OrderEntry } from '../domain/order-entry.js';
import { DeadLetterReason } from '../redis/dead-letters.js';
import type { ProductKeys } from '../redis/keys.js';
import type { SettledEntries, StreamEntry } from '../redis/streams.js';
import { acceptedRecord } from '../sale/buy.js';

export interface ProductStream {
  productId: string;
  stream: string;
  keys: ProductKeys;
}

/** An entry delivered to this consumer, with where it came from and how often it was delivered. */
export interface Delivery {
  product: ProductStream;
  entry: StreamEntry;
  deliveries: number;
}

export interface DeadLettered {
  delivery: Delivery;
  reason: DeadLetterReason;
  detail: string;
}

/**
 * An order accepted again under a key another order holds, with another order id: the buy
 * script found no record for the key (Redis lost it) and the retry named another order than
 * the first, which was accepted before keyed order ids (a UUIDv7) or by an API process with
 * another JWT secret (src/domain/order-id.ts). The first order is the key's answer; this one
 * is released. (A retry naming the same order is no supersede: that id is already in
 * PostgreSQL, a redelivery.)
 */
export interface Superseded extends Holder {
  delivery: Delivery;
  order: OrderEntry;
}

export interface BatchOutcome {
  inserted: number;
  /** The orders this batch inserted (published as order_persisted after the commit). */
  insertedOrders: OrderEntry[];
  duplicates: number;
  dead: DeadLettered[];
  superseded: Superseded[];
}

interface Parsed {
  delivery: Delivery;
  order: OrderEntry;
}

export interface SortedDeliveries {
  /** Persisted together, in one transaction. */
  batch: Parsed[];
  /** Delivered more often than maxDeliveries: persisted one by one, apart from the batch. */
  alone: Parsed[];
  /** Not orders at all: dead-lettered on first sight (retrying cannot fix them). */
  dead: DeadLettered[];
}

export function sortDeliveries(deliveries: Delivery[], maxDeliveries: number): SortedDeliveries {
  const sorted: SortedDeliveries = { batch: [], alone: [], dead: [] };
  for (const delivery of deliveries) {
    const { entry } = delivery;
    if (entry.fields === null) {
      sorted.dead.push({
        delivery,
        reason: DeadLetterReason.Deleted,
        detail: 'entry deleted from the order stream before it was persisted',
      });
      continue;
    }
    const order = parseOrderEntry(delivery.product.productId, entry.fields);
    if (order === undefined) {
      sorted.dead.push({
        delivery,
        reason: DeadLetterReason.Unparseable,
        detail: 'not an order entry (fields id, user, qty, key, at)',
      });
    } else if (delivery.deliveries > maxDeliveries) {
      sorted.alone.push({ delivery, order });
    } else {
      sorted.batch.push({ delivery, order });
    }
  }
  return sorted;
}

/**
 * Persists the batch in one transaction; if PostgreSQL refuses its data, persists its orders
 * one by one instead, so that only the bad rows are dead-lettered. Throws on anything but a
 * data error (the caller retries the whole step).
 */
export async function persistSorted(
  pool: Pool,
  sorted: Pick<SortedDeliveries, 'batch' | 'alone'>,
  log: Logger,
  crashPoint?: (point: PersistCrashPoint) => void,
): Promise<BatchOutcome> {
  const result: BatchOutcome = {
    inserted: 0,
    insertedOrders: [],
    duplicates: 0,
    dead: [],
    superseded: [],
  };
  const tally = (delivery: Delivery, order: OrderEntry, outcome: PersistOutcome) => {
    if (outcome === 'inserted') {
      result.inserted += 1;
      result.insertedOrders.push(order);
    } else if (outcome === 'duplicate') result.duplicates += 1;
    else result.superseded.push({ delivery, order, ...outcome });
  };
  let alone = sorted.alone;
  if (sorted.batch.length > 0) {
    try {
      const outcomes = await persistOrders(
        pool,
        sorted.batch.map((c) => c.order),
        crashPoint,
      );
      sorted.batch.forEach((c, i) => tally(c.delivery, c.order, outcomes[i] ?? 'duplicate'));
    } catch (error) {
      if (!isDataError(error)) throw error;
      log.warn(
        { err: error },
        `batch of ${sorted.batch.length} refused by PostgreSQL (${describe(error)}); persisting its orders one by one`,
      );
      alone = [...sorted.batch, ...sorted.alone];
    }
  }
  // One transaction per order: for a batch PostgreSQL refused (find which row, and persist
  // every other), and for entries delivered too often (whatever keeps failing with them
  // fails alone). Only a data error dead-letters an order: deliveries pile up without any
  // fault of the entry's (workers claiming each other's entries through a PostgreSQL
  // outage), and an entry dead-lettered for that alone would be an accepted order lost.
  for (const { delivery, order } of alone) {
    try {
      const [outcome] = await persistOrders(pool, [order], crashPoint);
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
 * The orders among `candidates` whose unit the buy script reserved (its owner index names
 * the same user), which the worker may release. Any other entry holding a taken key did not
 * come from a buy (someone wrote to the stream): releasing it would create stock, so it is
 * dead-lettered into `dead` instead, for the audit to report.
 */
export async function reservedByBuy(
  redis: Redis,
  candidates: Superseded[],
  dead: DeadLettered[],
): Promise<Superseded[]> {
  if (candidates.length === 0) return [];
  const owners = await Promise.all(
    candidates.map((c) => redis.hget(c.delivery.product.keys.owners, c.order.id)),
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

/** What to settle on each stream: every entry acknowledged, with its dead letters and supersedes. */
export function settlementsByStream(
  deliveries: Delivery[],
  dead: DeadLettered[],
  superseded: Superseded[],
  consumer: string,
  at: number,
): Map<ProductStream, SettledEntries> {
  const byStream = new Map<ProductStream, SettledEntries>();
  const slot = (product: ProductStream) => {
    let found = byStream.get(product);
    if (found === undefined) {
      found = { ids: [], deadLetters: [], superseded: [] };
      byStream.set(product, found);
    }
    return found;
  };
  for (const { product, entry } of deliveries) slot(product).ids.push(entry.id);
  for (const { delivery, reason, detail } of dead) {
    slot(delivery.product).deadLetters.push({
      origin: delivery.entry.id,
      reason,
      detail,
      deliveries: delivery.deliveries,
      consumer,
      at,
      fields: delivery.entry.fields,
    });
  }
  for (const { delivery, order, holder, holderQty } of superseded) {
    slot(delivery.product).superseded.push({
      orderId: order.id,
      productId: order.productId,
      userId: order.userId,
      qty: order.qty,
      idempotencyKey: order.idempotencyKey,
      holder,
      holderRecord: acceptedRecord(holder, order.productId, holderQty),
    });
  }
  return byStream;
}
