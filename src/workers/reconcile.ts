import { deleteMatching, type Redis } from '../redis/client.js';
import {
  findAcceptedOrders,
  findHeldUnitsByUser,
  findOrdersToReconcile,
  findPersistedOrderIds,
} from '../db/orders.js';
import { inRepeatableRead } from '../db/pool.js';
import { listProductIds, readProductSaleSettings } from '../db/products.js';
import {
  findProductReleases,
  findUnappliedReleases,
  markProductReleasesApplied,
} from '../db/releases.js';
import { parseOrderEntry, unpersistedEntries } from '../domain/order-entry.js';
import type { PaymentProvider, LedgerAnswer } from '../payments/provider-client.js';
import type { Stores } from '../stores.js';
import { idempotencyKey, productsKey, type ProductKeys } from '../redis/keys.js';
import {
  chooseShardTags,
  homeShardIndex,
  readLayout,
  readLayouts,
  shardedLayout,
  splitStock,
  writeShardState,
} from '../redis/sale-state.js';
import { completeTransfers } from '../sale/stock-shards.js';
import { acceptedRecord } from '../sale/buy.js';
import { applyReleaseToRedis } from '../sale/release.js';
import { isNotReplicated, type Durability } from '../redis/resp.js';
import { ensureOrderGroup } from '../redis/streams.js';
import { settleFailed, settlePaid } from '../sale/settle.js';

export interface ReconcileContext extends Stores {
  gateway: PaymentProvider;
  /**
   * `reconcile --durability replica`: each step of a move between shards goes on only once a
   * replica has the step before, as the API's moves do under `serve --durability replica`.
   */
  durability?: Durability | undefined;
  /** Called after each order, release and product a pass settles (the loop's liveness). */
  progress?: () => void;
}

export interface ReconcileReport {
  /** needs_reconciliation orders the ledger says were charged: now paid. */
  paid: number;
  /**
   * needs_reconciliation orders declined, or voided at the gateway before any charge reached
   * it: now payment_failed, released.
   */
  failed: number;
  /** Charges still in progress at the gateway (or the gateway unreachable): left for next time. */
  deferred: number;
  /** Releases that had reached PostgreSQL but not Redis, now applied. */
  releasesApplied: number;
  /** Moves of units between a sharded product's shards left half done (a crash), now completed. */
  transfersCompleted: number;
  /**
   * Sharded products with a move a replica did not acknowledge in time (`--durability
   * replica`): left in transit, still counted in the product's total, for the next pass.
   */
  productsAwaitingReplica: number;
}

const BATCH = 500;

/** A pass that found nothing to do. */
export function emptyReport(): ReconcileReport {
  return {
    paid: 0,
    failed: 0,
    deferred: 0,
    releasesApplied: 0,
    transfersCompleted: 0,
    productsAwaitingReplica: 0,
  };
}

/**
 * One reconciliation pass: settles every needs_reconciliation order by voiding its key (the
 * order id) at the gateway, then re-applies releases that reached PostgreSQL but not Redis,
 * then completes moves of units between shards that a crashed process left in transit.
 *
 * "No charge recorded" is never taken as "never charged": the worker's request may still be
 * on its way (a proxy, an egress queue, a slow provider) and would charge after the unit was
 * resold. The void makes any later charge with the key refused, and answers with the charge
 * instead when one got there first (paid or declined) or is being decided (deferred); the unit
 * is released only once the void is confirmed.
 */
export async function reconcileOnce(ctx: ReconcileContext): Promise<ReconcileReport> {
  const report = emptyReport();
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const orders = await findOrdersToReconcile(ctx.pool, after, BATCH);
    if (orders.length === 0) break;
    after = orders[orders.length - 1]?.id ?? after;
    for (const order of orders) {
      ctx.progress?.();
      let answer: LedgerAnswer;
      try {
        // One request settles it: the void answers with the charge if one got there first.
        answer = await ctx.gateway.void(order.id, order.amountCents);
      } catch {
        report.deferred += 1;
        continue;
      }
      switch (answer.state) {
        case 'in_progress':
          report.deferred += 1;
          break;
        case 'succeeded': {
          const attempt = { outcome: 'paid' as const, chargeId: answer.chargeId, latencyMs: 0 };
          if (await settlePaid(ctx, order, 'needs_reconciliation', attempt)) report.paid += 1;
          break;
        }
        case 'declined':
        case 'voided': {
          const reason =
            answer.state === 'declined'
              ? 'declined (reconciled)'
              : 'never charged, voided (reconciled)';
          if (await settleFailed(ctx, order, 'needs_reconciliation', reason, undefined))
            report.failed += 1;
          break;
        }
      }
    }
  }

  for (const release of await findUnappliedReleases(ctx.pool)) {
    await applyReleaseToRedis(ctx.redis, ctx.pool, ctx.keyPrefix, release);
    report.releasesApplied += 1;
    ctx.progress?.();
  }
  for (const layout of await readLayouts(ctx.redis, ctx.keyPrefix)) {
    ctx.progress?.();
    if (layout.shards.length === 1) continue;
    try {
      report.transfersCompleted += await completeTransfers(ctx.redis, layout, ctx.durability);
    } catch (error) {
      // The step is on its master only: settling on from there could lose units (or sell them
      // twice) in a failover. Any other error fails the pass, to be retried.
      if (!isNotReplicated(error)) throw error;
      report.productsAwaitingReplica += 1;
    }
  }
  return report;
}

export interface RebuildReport {
  products: {
    productId: string;
    stock: number;
    buyers: number;
    unpersisted: number;
    /** Idempotency records restored: one per accepted order. */
    records: number;
  }[];
}

const RECORDS_PER_PIPELINE = 1_000;

/**
 * Makes the shard's idempotency records exactly its accepted orders: each is written back as
 * its key's record (without expiry) and in the owner index (orderId -> userId), which is also
 * the sync-mode mirror's marker: a replayed accept mirrors its order again
 * (src/sale/sync-buy.ts), a no-op only when the order is in the index. Any other record goes
 * first: versions before issue 14 recorded rejections too, for 24 h, and a retry of such a key
 * would get that rejection again instead of a new attempt.
 */
async function restoreOrderRecords(
  redis: Redis,
  keys: ProductKeys,
  orders: readonly { id: string; userId: string; idempotencyKey: string; qty: number }[],
  productId: string,
): Promise<void> {
  await deleteMatching(redis, `${keys.idempotencyPrefix}*`);
  for (let i = 0; i < orders.length; i += RECORDS_PER_PIPELINE) {
    const pipeline = redis.pipeline();
    for (const order of orders.slice(i, i + RECORDS_PER_PIPELINE)) {
      pipeline.set(
        idempotencyKey(keys, order.userId, order.idempotencyKey),
        acceptedRecord(order.id, productId, order.qty),
      );
      pipeline.hset(keys.owners, order.id, order.userId);
    }
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error !== null) throw error;
  }
}

/**
 * Recomputes each product's Redis sale state from PostgreSQL, after Redis lost its data:
 * stock = PG remaining minus any orders still in the Redis stream but not yet persisted, the
 * per-user counts from the orders that hold stock, the set of released orders (so a late
 * release cannot give units back twice), and the idempotency record of every accepted order
 * (in PostgreSQL or still in the stream) with its owner entry, so that a retry of a key from
 * before the loss gets its first answer instead of a second unit.
 */
export async function rebuildRedis(ctx: Omit<ReconcileContext, 'gateway'>): Promise<RebuildReport> {
  const report: RebuildReport = { products: [] };
  for (const productId of await listProductIds(ctx.pool)) {
    const found = await readLayout(ctx.redis, ctx.keyPrefix, productId);
    // The stream first, then one PG snapshot: an order the worker persists in between is
    // either in the snapshot (counted in remaining) or not (counted as unpersisted), never both.
    const shards = await Promise.all(
      found.shards.map((keys) =>
        Promise.all([ctx.redis.xrange(keys.orders, '-', '+'), ctx.redis.hkeys(keys.superseded)]),
      ),
    );
    const supersededIds = shards.flatMap(([, ids]) => ids);
    const streamed = shards.flatMap(([entries]) =>
      entries.flatMap(([, fields]) => {
        const order = parseOrderEntry(productId, fields);
        return order === undefined ? [] : [{ order }];
      }),
    );
    const snapshot = await inRepeatableRead(ctx.pool, async (client) => {
      const product = await readProductSaleSettings(client, productId);
      const holds = await findHeldUnitsByUser(client, productId);
      const persisted = await findPersistedOrderIds(
        client,
        streamed.map((s) => s.order.id),
      );
      const accepted = await findAcceptedOrders(client, productId);
      const releases = await findProductReleases(client, productId);
      // Stock is recomputed from PG, which already counts every release.
      await markProductReleasesApplied(client, productId);
      return { product, holds, persisted, accepted, releases };
    });
    if (snapshot.product === undefined) continue;

    const bought = new Map(snapshot.holds.map((h) => [h.userId, h.qty]));
    const unpersisted = unpersistedEntries(streamed, snapshot.persisted, new Set(supersededIds));
    let unpersistedUnits = 0;
    for (const { order } of unpersisted) {
      unpersistedUnits += order.qty;
      bought.set(order.userId, (bought.get(order.userId) ?? 0) + order.qty);
    }
    const stock = Math.max(0, snapshot.product.remaining - unpersistedUnits);
    // The shard count is PostgreSQL's; the tags are the ones Redis still has, if it has them.
    const count = snapshot.product.stockShards;
    const layout =
      found.shards.length === count
        ? found
        : shardedLayout(ctx.keyPrefix, productId, chooseShardTags(ctx.redis, productId, count));
    const home = (userId: string) => homeShardIndex(userId, count);
    // Superseded orders were released by the worker (their ids are not in PostgreSQL).
    const released = [
      ...snapshot.releases.map((r) => ({ id: r.orderId, shard: home(r.userId) })),
      ...shards.flatMap(([, ids], shard) => ids.map((id) => ({ id, shard }))),
    ];
    const stocks = splitStock(stock, count);
    const settings = {
      total: snapshot.product.stockTotal,
      limit: snapshot.product.perUserLimit,
      starts: snapshot.product.startsAt.getTime(),
    };
    // Shard 0 last: it names the others (see seedProduct).
    for (const keys of [...layout.shards.slice(1), ...layout.shards.slice(0, 1)]) {
      const shardBought = [...bought].filter(([userId]) => home(userId) === keys.shard);
      const shardReleased = released.filter((r) => r.shard === keys.shard).map((r) => r.id);
      await writeShardState(
        ctx.redis,
        layout,
        keys,
        { stock: stocks[keys.shard] ?? 0, settings },
        (multi) => {
          // Units in transit are in PG's remaining already: the moves start again from here.
          multi.del(keys.bought, keys.released, keys.transit, keys.received);
          if (shardBought.length > 0) multi.hset(keys.bought, Object.fromEntries(shardBought));
          if (shardReleased.length > 0) multi.sadd(keys.released, ...shardReleased);
        },
      );
      await restoreOrderRecords(
        ctx.redis,
        keys,
        [...snapshot.accepted, ...unpersisted.map((s) => s.order)].filter(
          (order) => home(order.userId) === keys.shard,
        ),
        productId,
      );
      await ensureOrderGroup(ctx.redis, keys.orders);
    }
    // Apart from the MULTIs: the products set lives in another slot on a Redis Cluster.
    await ctx.redis.sadd(productsKey(ctx.keyPrefix), productId);
    report.products.push({
      productId,
      stock,
      buyers: bought.size,
      unpersisted: unpersisted.length,
      records: snapshot.accepted.length + unpersisted.length,
    });
  }
  return report;
}
