import {
  countDuplicateKeys,
  countStuckOrders,
  findOpenOrderIds,
  findPaidOrderIds,
  findPersistedOrderIds,
  findProductOrderIds,
  sumHeldUnits,
} from '../db/orders.js';
import { countDoublePaidOrders } from '../db/payments.js';
import { listProductIds, readProductStock } from '../db/products.js';
import { parseOrderEntry, unpersistedEntries } from '../domain/order-entry.js';
import { productsKey } from '../redis/keys.js';
import { readLayout, unitsInTransit } from '../redis/sale-state.js';
import type { RecordedCharge } from '../payments/provider-client.js';
import type { Stores } from '../stores.js';

// The invariants of docs/ARCHITECTURE.md section 5, checked against PostgreSQL, Redis and the gateway ledger.

export interface Check {
  name: string;
  ok: boolean;
  expected: string;
  actual: string;
}

export interface AuditReport {
  ok: boolean;
  checks: Check[];
}

export interface AuditContext extends Stores {
  /** Every charge the gateway recorded; undefined skips the ledger checks. */
  ledger?: RecordedCharge[] | undefined;
}

export interface AuditOptions {
  /** Only this product (default: every product in PostgreSQL). */
  productId?: string | undefined;
  /** An accepted order may take this long to reach PostgreSQL before it counts as lost. */
  persistGraceMs?: number;
  /** A pending or needs_reconciliation order untouched this long is stuck. */
  stuckAfterMs?: number;
}

const check = (
  name: string,
  ok: boolean,
  expected: string | number,
  actual: string | number,
): Check => ({
  name,
  ok,
  expected: String(expected),
  actual: String(actual),
});

/** Stream entry ids start with the ms time Redis appended them. */
const entryTime = (id: string) => Number(id.split('-')[0]);

async function auditProduct(
  ctx: AuditContext,
  productId: string,
  options: Required<Omit<AuditOptions, 'productId'>>,
): Promise<Check[]> {
  const layout = await readLayout(ctx.redis, ctx.keyPrefix, productId);
  const now = Date.now();
  const product = await readProductStock(ctx.pool, productId);
  if (product === undefined)
    return [check(`${productId}: product exists`, false, 'a product row', 'none')];

  // Every shard (one on an unsharded product), each in its own slot.
  const shards = await Promise.all(
    layout.shards.map((keys) =>
      Promise.all([
        ctx.redis.xrange(keys.orders, '-', '+'),
        ctx.redis.xlen(keys.deadLetter),
        ctx.redis.get(keys.stock),
        ctx.redis.hkeys(keys.superseded),
      ]),
    ),
  );
  const entries = shards.flatMap(([streamEntries]) => streamEntries);
  const deadLetters = shards.reduce((sum, [, dead]) => sum + dead, 0);
  const shardStocks = shards.map(([, , stock]) => Number(stock ?? 0));
  const superseded = shards.flatMap(([, , , ids]) => ids);
  // Units lent between shards and not yet received are in no shard's stock.
  const inTransit = await unitsInTransit(ctx.redis, layout);
  const streamed = entries.flatMap(([id, fields]) => {
    const order = parseOrderEntry(productId, fields);
    return order === undefined ? [] : [{ entryId: id, order }];
  });
  const persisted = await findPersistedOrderIds(
    ctx.pool,
    streamed.map((s) => s.order.id),
  );
  const unpersisted = unpersistedEntries(streamed, persisted, new Set(superseded));
  const unpersistedUnits = unpersisted.reduce((sum, s) => sum + s.order.qty, 0);
  const lost = unpersisted.filter((s) => now - entryTime(s.entryId) >= options.persistGraceMs);

  const held = await sumHeldUnits(ctx.pool, productId);
  const redisStock = shardStocks.reduce((sum, stock) => sum + stock, 0) + inTransit;
  const redisStockShown =
    layout.shards.length === 1
      ? String(redisStock)
      : `(${shardStocks.join(' + ')} in ${layout.shards.length} shards + ${inTransit} in transit)`;
  const duplicates = await countDuplicateKeys(ctx.pool, productId);
  const doublePaid = await countDoublePaidOrders(ctx.pool, productId);
  const stuck = await countStuckOrders(ctx.pool, productId, options.stuckAfterMs);
  const p = (name: string) => `${productId}: ${name}`;
  const checks = [
    check(
      p('no oversell (held units <= stock)'),
      held + unpersistedUnits <= product.stockTotal,
      `<= ${product.stockTotal}`,
      held + unpersistedUnits,
    ),
    check(
      p('conservation (Redis stock + live reservations = stock)'),
      redisStock + held + unpersistedUnits === product.stockTotal,
      product.stockTotal,
      `${redisStockShown} + ${held} + ${unpersistedUnits} = ${redisStock + held + unpersistedUnits}`,
    ),
    check(
      p('PG stock guard (remaining = stock - held)'),
      product.remaining === product.stockTotal - held,
      product.stockTotal - held,
      product.remaining,
    ),
    check(
      p('Redis and PG stock agree'),
      redisStock + unpersistedUnits === product.remaining,
      product.remaining,
      `${redisStockShown} + ${unpersistedUnits} in flight`,
    ),
    check(
      p('no shard below zero units'),
      shardStocks.every((stock) => stock >= 0),
      '>= 0 each',
      shardStocks.join(', '),
    ),
    check(
      p(`every accepted order in PG within ${options.persistGraceMs / 1000} s`),
      lost.length === 0,
      0,
      lost.length === 0 ? 0 : `${lost.length} missing, e.g. ${lost[0]?.order.id ?? ''}`,
    ),
    check(p('no dead-lettered orders'), deadLetters === 0, 0, deadLetters),
    check(p('one order per (user, idempotency key)'), duplicates === 0, 0, duplicates),
    check(p('at most one successful charge per order (PG)'), doublePaid === 0, 0, doublePaid),
    check(p(`no order stuck for ${options.stuckAfterMs / 1000} s`), stuck === 0, 0, stuck),
  ];

  if (ctx.ledger !== undefined) {
    const paidOrders = await findPaidOrderIds(ctx.pool, productId);
    const productOrders = await findProductOrderIds(ctx.pool, productId);
    const succeeded = ctx.ledger.filter(
      (c) => c.status === 'succeeded' && productOrders.has(c.orderId),
    );
    const chargesPerOrder = new Map<string, number>();
    for (const c of succeeded)
      chargesPerOrder.set(c.orderId, (chargesPerOrder.get(c.orderId) ?? 0) + 1);
    const charged = [...chargesPerOrder.keys()];
    const twice = [...chargesPerOrder.values()].filter((n) => n > 1).length;
    const paidNotCharged = [...paidOrders].filter((id) => !chargesPerOrder.has(id)).length;
    // A charge for an order not (yet) paid is fine only while the order waits for reconcile.
    const open = await findOpenOrderIds(ctx.pool, productId);
    const chargedNotPaid = charged.filter((id) => !paidOrders.has(id) && !open.has(id)).length;
    checks.push(
      check(p('at most one successful charge per order (gateway)'), twice === 0, 0, twice),
      check(
        p('every paid order was charged (gateway agrees)'),
        paidNotCharged === 0,
        0,
        paidNotCharged,
      ),
      check(
        p('every charge belongs to a paid or open order'),
        chargedNotPaid === 0,
        0,
        chargedNotPaid,
      ),
    );
  }
  return checks;
}

export async function runAudit(
  ctx: AuditContext,
  options: AuditOptions = {},
): Promise<AuditReport> {
  const settings = {
    persistGraceMs: options.persistGraceMs ?? 10_000,
    stuckAfterMs: options.stuckAfterMs ?? 300_000,
  };
  let products: string[];
  if (options.productId !== undefined) products = [options.productId];
  else {
    const fromPg = await listProductIds(ctx.pool);
    const fromRedis = await ctx.redis.smembers(productsKey(ctx.keyPrefix));
    products = [...new Set([...fromPg, ...fromRedis])].sort();
  }
  const checks: Check[] = [];
  for (const productId of products) checks.push(...(await auditProduct(ctx, productId, settings)));
  return { ok: checks.every((c) => c.ok), checks };
}
