// Where a sale's orders are, read directly from Redis and PostgreSQL: the stream and its
// group, the orders by status, the stock; and waits for the workers to catch up.
import { randomUUID } from 'node:crypto';
import type { Redis } from '../../src/redis/client.js';
import { parseDeadLetter, type DeadLetter } from '../../src/redis/dead-letters.js';
import { idempotencyKey, ORDER_GROUP, productKeys } from '../../src/redis/keys.js';
import { settleTransfer, type ProductLayout } from '../../src/redis/sale-state.js';
import { lendUnits, receiveUnits } from '../../src/redis/scripts.js';
import type { TestServices } from './services.js';
import { until } from './wait.js';

export interface StreamState {
  length: number;
  /** Entries delivered to a consumer and not acknowledged. */
  pending: number;
  /** Entries never delivered to any consumer. */
  lag: number;
  deadLetters: number;
  /** Order ids in the stream, in order. */
  orderIds: string[];
}

export async function streamState(s: TestServices, productId: string): Promise<StreamState> {
  const keys = productKeys(s.keyPrefix, productId);
  const entries = await s.redis.xrange(keys.orders, '-', '+');
  const orderIds = entries.map(([, f]) => f[f.indexOf('id') + 1] ?? '');
  const groups = (await s.redis.xinfo('GROUPS', keys.orders).catch(() => [])) as unknown[][];
  let pending = 0;
  let lag = entries.length;
  for (const group of groups) {
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
    if (info.get('name') !== ORDER_GROUP) continue;
    pending = Number(info.get('pending'));
    const reported = info.get('lag');
    lag = typeof reported === 'number' ? reported : -1;
  }
  return {
    length: entries.length,
    pending,
    lag,
    deadLetters: await s.redis.xlen(keys.deadLetter),
    orderIds,
  };
}

export interface PgOrders {
  rows: number;
  distinctIds: number;
  byStatus: Record<string, number>;
  /** (user, idempotency key) pairs holding more than one order. */
  duplicateKeys: number;
  remaining: number;
  stockTotal: number;
  ids: Set<string>;
}

export async function pgOrders(s: TestServices, productId: string): Promise<PgOrders> {
  const rows = await s.pool.query<{ id: string; status: string }>(
    'SELECT id::text AS id, status FROM orders WHERE product_id = $1',
    [productId],
  );
  const byStatus: Record<string, number> = {};
  for (const r of rows.rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const dup = await s.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM orders WHERE product_id = $1
       GROUP BY user_id, idempotency_key HAVING count(*) > 1) d`,
    [productId],
  );
  const product = await s.pool.query<{ remaining: number; stock_total: number }>(
    'SELECT remaining, stock_total FROM products WHERE id = $1',
    [productId],
  );
  return {
    rows: rows.rows.length,
    distinctIds: new Set(rows.rows.map((r) => r.id)).size,
    byStatus,
    duplicateKeys: dup.rows[0]?.n ?? -1,
    remaining: product.rows[0]?.remaining ?? -1,
    stockTotal: product.rows[0]?.stock_total ?? -1,
    ids: new Set(rows.rows.map((r) => r.id)),
  };
}

/** The product's dead letters, oldest first; an entry that is not one fails the test. */
export async function deadLetters(s: TestServices, productId: string): Promise<DeadLetter[]> {
  const entries = await s.redis.xrange(productKeys(s.keyPrefix, productId).deadLetter, '-', '+');
  return entries.map(([, fields]) => {
    const letter = parseDeadLetter(fields);
    if (letter === undefined) throw new Error(`not a dead letter: ${fields.join(' ')}`);
    return letter;
  });
}

export async function redisStock(s: TestServices, productId: string): Promise<number> {
  return Number(await s.redis.get(productKeys(s.keyPrefix, productId).stock));
}

/** Every stream entry of the product is acknowledged, and in PG unless it was superseded. */
export async function waitDrained(s: TestServices, productId: string, timeoutMs = 120_000) {
  await until(
    `${productId}: every stream entry persisted and acknowledged`,
    async () => {
      const st = await streamState(s, productId);
      if (st.pending !== 0 || st.lag !== 0) return false;
      const pg = await pgOrders(s, productId);
      const superseded = new Set(
        await s.redis.hkeys(productKeys(s.keyPrefix, productId).superseded),
      );
      return st.orderIds.every((id) => pg.ids.has(id) || superseded.has(id));
    },
    timeoutMs,
  );
}

/** No order of the product is `pending` any more (the payment worker got to all of them). */
export async function waitCharged(s: TestServices, productId: string, timeoutMs = 180_000) {
  await until(
    `${productId}: every order charged (none pending)`,
    async () => ((await pgOrders(s, productId)).byStatus.pending ?? 0) === 0,
    timeoutMs,
  );
}

/**
 * Moves every unit of a sharded product onto shard `to`, the way the API's borrowing does
 * (lend, receive, settle), so tests can start a sale at its tail.
 */
export async function gatherUnits(redis: Redis, layout: ProductLayout, to: number): Promise<void> {
  const destination = layout.shards[to];
  if (destination === undefined) throw new Error(`no shard ${to}`);
  for (const from of layout.shards) {
    if (from === destination) continue;
    // A fresh id each time: a receive is once per transfer id, and a gather may be repeated.
    const id = `gather-${from.shard}-${to}-${randomUUID()}`;
    const { lent } = await lendUnits(redis, from, destination, id, Number.MAX_SAFE_INTEGER);
    if (lent > 0) await receiveUnits(redis, destination, id, lent);
    await settleTransfer(redis, from, id);
  }
}

/** One accepted buy as the buy script wrote it. */
export interface AcceptedBuy {
  productId: string;
  orderId: string;
  userId: string;
  idempotencyKey: string;
  qty: number;
}

/**
 * What a Redis that lost its last writes (AOF `everysec` after a crash, an asynchronous
 * failover) does to one accepted buy: every write of its buy script undone together (one
 * script's writes are atomic in the AOF and in replication), whatever the order worker did
 * with the order since. The stock and the per-user count get the units back; the stream entry,
 * the owner entry and the idempotency record are gone.
 */
export async function rollBackBuy(s: TestServices, order: AcceptedBuy): Promise<void> {
  const keys = productKeys(s.keyPrefix, order.productId);
  const entries = await s.redis.xrange(keys.orders, '-', '+');
  const written = entries.filter(([, f]) => f[f.indexOf('id') + 1] === order.orderId);
  if (written.length !== 1) throw new Error(`order ${order.orderId} is not in the stream once`);
  const results = await s.redis
    .multi()
    .incrby(keys.stock, order.qty)
    .hincrby(keys.bought, order.userId, -order.qty)
    .xdel(keys.orders, ...written.map(([id]) => id))
    .hdel(keys.owners, order.orderId)
    .del(idempotencyKey(keys, order.userId, order.idempotencyKey))
    .exec();
  for (const [error] of results ?? []) if (error !== null) throw error;
}
