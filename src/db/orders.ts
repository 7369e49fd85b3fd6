import {
  assertTransition,
  HOLDING_STATUSES,
  type StoredOrderStatus,
} from '../domain/order-status.js';
import pg from 'pg';
import { markMayHaveRun } from '../domain/errors.js';
import type { Pool, PoolClient } from './pool.js';

export interface OrderRecord {
  id: string;
  productId: string;
  userId: string;
  qty: number;
  status: StoredOrderStatus;
}

/**
 * The only way an order changes status: a guarded UPDATE that succeeds only if the order is
 * still in `from`. Returns false when another worker (or a newer state) got there first, so a
 * stale worker can never overwrite a newer state. Throws on a transition not in TRANSITIONS.
 */
export async function transitionOrder(
  db: Pool | PoolClient,
  orderId: string,
  from: StoredOrderStatus,
  to: StoredOrderStatus,
): Promise<boolean> {
  assertTransition(from, to);
  const result = await db.query(
    `UPDATE orders SET status = $3, updated_at = now(), payment_lease_until = NULL
      WHERE id = $1 AND status = $2`,
    [orderId, from, to],
  );
  return result.rowCount === 1;
}

/**
 * What an order costs, in cents, over `orders o JOIN products p`: the amount the payment worker
 * charges and reconcile voids, so both name the same charge.
 */
export const ORDER_AMOUNT_CENTS_SQL = '(p.price_cents * o.qty)::bigint';

interface OrderRow {
  id: string;
  product_id: string;
  user_id: string;
  qty: number;
  status: StoredOrderStatus;
}

/** An order with what it costs, in cents (ORDER_AMOUNT_CENTS_SQL). */
export interface PricedOrder extends OrderRecord {
  amountCents: number;
}

/** A priced order's row: its order's columns and `amount_cents`. */
export interface PricedOrderRow extends OrderRow {
  amount_cents: string;
}

export function toPricedOrder(row: PricedOrderRow): PricedOrder {
  return {
    id: row.id,
    productId: row.product_id,
    userId: row.user_id,
    qty: row.qty,
    status: row.status,
    amountCents: Number(row.amount_cents),
  };
}

/** An order as its owner asks for it (GET /order/:id). */
export interface OwnedOrder {
  id: string;
  productId: string;
  qty: number;
  status: StoredOrderStatus;
  acceptedAt: Date;
  updatedAt: Date;
}

/**
 * Order `orderId` if `userId` placed it, else undefined: another user's order reads exactly
 * like an unknown id.
 */
export async function findOwnedOrder(
  db: Pool,
  orderId: string,
  userId: string,
): Promise<OwnedOrder | undefined> {
  const { rows } = await db.query<{
    id: string;
    product_id: string;
    qty: number;
    status: StoredOrderStatus;
    accepted_at: Date;
    updated_at: Date;
  }>(
    `SELECT id, product_id, qty, status, accepted_at, updated_at
       FROM orders WHERE id = $1 AND user_id = $2`,
    [orderId, userId],
  );
  const row = rows[0];
  return row === undefined
    ? undefined
    : {
        id: row.id,
        productId: row.product_id,
        qty: row.qty,
        status: row.status,
        acceptedAt: row.accepted_at,
        updatedAt: row.updated_at,
      };
}

/** The ids among `ids` that are orders in PostgreSQL. */
export async function findPersistedOrderIds(
  db: Pool | PoolClient,
  ids: readonly string[],
): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM orders WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Up to `limit` needs_reconciliation orders with ids after `after`, in id order (a page), with
 * the amount reconcile voids.
 */
export async function findOrdersToReconcile(
  pool: Pool,
  after: string,
  limit: number,
): Promise<PricedOrder[]> {
  const { rows } = await pool.query<PricedOrderRow>(
    `SELECT o.id, o.product_id, o.user_id, o.qty, o.status, ${ORDER_AMOUNT_CENTS_SQL} AS amount_cents
         FROM orders o JOIN products p ON p.id = o.product_id
        WHERE o.status = 'needs_reconciliation' AND o.id > $1 ORDER BY o.id LIMIT $2`,
    [after, limit],
  );
  return rows.map(toPricedOrder);
}

/** How many orders of the product PostgreSQL has, in any status. */
export async function countProductOrders(pool: Pool, productId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM orders WHERE product_id = $1',
    [productId],
  );
  return rows[0]?.n ?? 0;
}

/** Deletes the product's orders (seed --reset, inside its transaction); returns how many. */
export async function deleteProductOrders(client: PoolClient, productId: string): Promise<number> {
  return (
    (await client.query('DELETE FROM orders WHERE product_id = $1', [productId])).rowCount ?? 0
  );
}

/** The units the product's orders hold (HOLDING_STATUSES). */
export async function sumHeldUnits(pool: Pool, productId: string): Promise<number> {
  const { rows } = await pool.query<{ units: number }>(
    'SELECT coalesce(sum(qty), 0)::int AS units FROM orders WHERE product_id = $1 AND status = ANY($2::text[])',
    [productId, HOLDING_STATUSES],
  );
  return rows[0]?.units ?? 0;
}

/** The (user, idempotency key) pairs of the product held by more than one order. */
export async function countDuplicateKeys(pool: Pool, productId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM orders WHERE product_id = $1
         GROUP BY user_id, idempotency_key HAVING count(*) > 1) d`,
    [productId],
  );
  return rows[0]?.n ?? 0;
}

/** The product's pending or needs_reconciliation orders untouched for `stuckAfterMs`. */
export async function countStuckOrders(
  pool: Pool,
  productId: string,
  stuckAfterMs: number,
): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM orders WHERE product_id = $1
         AND status IN ('pending', 'needs_reconciliation') AND updated_at < now() - $2 * interval '1 millisecond'`,
    [productId, stuckAfterMs],
  );
  return rows[0]?.n ?? 0;
}

const ids = (rows: readonly { id: string }[]): Set<string> => new Set(rows.map((r) => r.id));

/** The ids of the product's paid orders. */
export async function findPaidOrderIds(pool: Pool, productId: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ id: string }>(
    "SELECT id FROM orders WHERE product_id = $1 AND status = 'paid'",
    [productId],
  );
  return ids(rows);
}

/** The ids of all the product's orders. */
export async function findProductOrderIds(pool: Pool, productId: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ id: string }>('SELECT id FROM orders WHERE product_id = $1', [
    productId,
  ]);
  return ids(rows);
}

/** The ids of the product's orders still waiting for an outcome (pending, needs_reconciliation). */
export async function findOpenOrderIds(pool: Pool, productId: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ id: string }>(
    "SELECT id FROM orders WHERE product_id = $1 AND status IN ('pending', 'needs_reconciliation')",
    [productId],
  );
  return ids(rows);
}

// rebuildRedis's snapshot: read inside the caller's REPEATABLE READ transaction.

/** The units each buyer's orders of the product hold (HOLDING_STATUSES). */
export async function findHeldUnitsByUser(
  client: PoolClient,
  productId: string,
): Promise<{ userId: string; qty: number }[]> {
  const { rows } = await client.query<{ user_id: string; qty: number }>(
    `SELECT user_id, sum(qty)::int AS qty FROM orders
          WHERE product_id = $1 AND status = ANY($2::text[]) GROUP BY user_id`,
    [productId, HOLDING_STATUSES],
  );
  return rows.map((r) => ({ userId: r.user_id, qty: r.qty }));
}

/** An accepted order as its idempotency record names it. */
export interface AcceptedOrder {
  id: string;
  userId: string;
  idempotencyKey: string;
  qty: number;
}

/** Every order of the product, in any status: each was an accepted buy. */
export async function findAcceptedOrders(
  client: PoolClient,
  productId: string,
): Promise<AcceptedOrder[]> {
  const { rows } = await client.query<{
    id: string;
    user_id: string;
    idempotency_key: string;
    qty: number;
  }>('SELECT id, user_id, idempotency_key, qty FROM orders WHERE product_id = $1', [productId]);
  return rows.map((r) => ({
    id: r.id,
    userId: r.user_id,
    idempotencyKey: r.idempotency_key,
    qty: r.qty,
  }));
}

// Sync mode (src/sale/sync-buy.ts): the buy is one PostgreSQL transaction, the function
// fsale_sync_buy (sql/000004_idempotency_is_the_order.sql), and a key's answer is its order.

/** A sync-mode buy as fsale_sync_buy takes it. */
export interface SyncOrderRequest {
  orderId: string;
  productId: string;
  userId: string;
  qty: number;
  idempotencyKey: string;
  /** The Redis rate limiter refused this attempt; PostgreSQL applies it in the script's order. */
  rateLimited: boolean;
}

/** fsale_sync_buy's answer: a BuyCode, whether it replays the key's order, and the stock left. */
export interface SyncOrderAnswer {
  code: number;
  replayed: boolean;
  orderId: string;
  remaining: number;
}

const PLACE_SYNC_ORDER =
  'SELECT r_code, r_replayed, r_order_id, r_remaining FROM fsale_sync_buy($1, $2, $3, $4, $5, $6)';

/** One sync-mode buy: its own transaction, inside fsale_sync_buy. */
export async function placeSyncOrder(
  pool: Pool,
  request: SyncOrderRequest,
): Promise<SyncOrderAnswer> {
  // The connection is taken first: failing to get one sent nothing (a plain outage, 503).
  const client = await pool.connect();
  let rows: { r_code: number; r_replayed: boolean; r_order_id: string; r_remaining: number }[];
  let broken: Error | undefined;
  try {
    ({ rows } = await client.query<(typeof rows)[number]>({
      name: 'fsale-sync-buy',
      text: PLACE_SYNC_ORDER,
      values: [
        request.orderId,
        request.productId,
        request.userId,
        request.qty,
        request.idempotencyKey,
        request.rateLimited,
      ],
    }));
  } catch (error) {
    // PostgreSQL's own error answer means the statement (its own transaction) rolled back.
    // Without one, the statement was sent and the connection lost: it may have committed.
    if (error instanceof pg.DatabaseError || !(error instanceof Error)) throw error;
    broken = error;
    throw markMayHaveRun(error);
  } finally {
    client.release(broken);
  }
  const row = rows[0];
  if (row === undefined) throw new Error('fsale_sync_buy returned no row');
  return {
    code: row.r_code,
    replayed: row.r_replayed,
    orderId: row.r_order_id,
    remaining: row.r_remaining,
  };
}

/** The order holding (product, user, idempotency key), read without a transaction. */
export async function findOrderByKey(
  pool: Pool,
  key: { productId: string; userId: string; idempotencyKey: string },
): Promise<{ id: string; qty: number } | undefined> {
  const { rows } = await pool.query<{ id: string; qty: number }>({
    name: 'fsale-sync-stored-answer',
    text: `SELECT id::text AS id, qty FROM orders
            WHERE product_id = $1 AND user_id = $2 AND idempotency_key = $3`,
    values: [key.productId, key.userId, key.idempotencyKey],
  });
  return rows[0];
}
