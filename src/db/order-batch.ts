// The orders table family, the order worker's batch (src/workers/orders.ts): accepted orders
// from the streams, persisted in one transaction.
import type { OrderEntry } from '../domain/order-entry.js';
import { OrderStatus } from '../domain/order-status.js';
import { isDataError } from './errors.js';
import type { Pool } from './pool.js';

// One statement: insert the batch, then take the stock of the rows actually inserted (a
// redelivered row conflicts and takes nothing). The CHECK on products.remaining is the
// PG-side stock guard: if Redis ever accepted more than PostgreSQL holds, this fails.
// `ON CONFLICT DO NOTHING` has no target on purpose: a row conflicting on the unique
// (product_id, user_id, idempotency_key) under a different id is skipped too instead of
// failing the batch; the worker then finds its key's holder below and supersedes it.
// A row conflicting on its id is a redelivery, or a retry that re-reserved its own order
// after Redis rolled the buy back (keyed order ids, src/domain/order-id.ts): either way the
// order and its unit are already counted here, and the entry's Redis unit is that unit.
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

/** The order that holds a skipped order's (product, user, idempotency key). */
export interface Holder {
  holder: string;
  holderQty: number;
}

export type PersistOutcome = 'inserted' | 'duplicate' | Holder;

/** Test-only crash points around the COMMIT (see OrderWorkerFault). */
export type PersistCrashPoint = 'before-commit' | 'after-commit';

/**
 * One transaction: insert, take stock, COMMIT. Returns each order's outcome, in order.
 *
 * The COMMIT is durable (synchronous_commit stays on, also per transaction): the XACK that
 * follows it makes Redis forget the entries, so a commit that a PostgreSQL crash could
 * still undo (`SET LOCAL synchronous_commit = off` loses up to ~3 x wal_writer_delay of
 * commits) would lose accepted orders for good. Throughput comes from batching instead.
 */
export async function persistOrders(
  pool: Pool,
  orders: readonly OrderEntry[],
  crashPoint: (point: PersistCrashPoint) => void = () => undefined,
): Promise<PersistOutcome[]> {
  const client = await pool.connect();
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
    crashPoint('before-commit');
    await client.query('COMMIT');
    crashPoint('after-commit');
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
