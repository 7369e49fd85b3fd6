// What the buy-path tests need to run against both buy modes (queue and sync).
import type { BuyMode } from '../../src/sale/buy.js';
import { saleState } from './sale.js';
import type { TestServices } from './services.js';

/** An accepted buy: queued in Redis (202) or already persisted in PostgreSQL (201). */
export const ACCEPTED_STATUS: Readonly<Record<BuyMode, number>> = { queue: 202, sync: 201 };

/** The order status an accepted buy answers with. */
export const ACCEPTED_ORDER_STATUS: Readonly<Record<BuyMode, string>> = {
  queue: 'queued',
  sync: 'pending',
};

/** The PostgreSQL side of a product's sale: orders (sync mode's idempotency records), stock. */
export async function pgState(s: TestServices, productId: string) {
  const { rows } = await s.pool.query<{ orders: number; remaining: number }>(
    `SELECT (SELECT count(*)::int FROM orders WHERE product_id = $1) AS orders,
            (SELECT remaining FROM products WHERE id = $1) AS remaining`,
    [productId],
  );
  return rows[0];
}

/** Everything a rejected request must leave unchanged, in Redis and in PostgreSQL. */
export async function fullState(s: TestServices, productId: string) {
  const [redis, pg] = await Promise.all([saleState(s, productId), pgState(s, productId)]);
  return { ...redis, pg };
}

/** Ids of the orders of a product as they reached PostgreSQL, with their statuses. */
export async function persistedOrders(s: TestServices, productId: string) {
  const { rows } = await s.pool.query<{ id: string; user_id: string; status: string }>(
    'SELECT id, user_id, status FROM orders WHERE product_id = $1',
    [productId],
  );
  return rows;
}
