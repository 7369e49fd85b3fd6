import { OrderStatus } from '../domain/order-status.js';
import { productsKey } from '../redis/keys.js';
import { homeShard, type ProductLayout } from '../redis/sale-state.js';
import type { SaleContext } from './app.js';

export interface OrderView {
  orderId: string;
  productId: string;
  status: OrderStatus;
  qty?: number;
  acceptedAt?: string;
  updatedAt?: string;
}

interface OrderRow {
  id: string;
  product_id: string;
  qty: number;
  status: Exclude<OrderStatus, 'queued'>;
  accepted_at: Date;
  updated_at: Date;
}

async function persistedOrder(
  ctx: SaleContext,
  id: string,
  userId: string,
): Promise<OrderView | undefined> {
  const { rows } = await ctx.pool.query<OrderRow>(
    `SELECT id, product_id, qty, status, accepted_at, updated_at
       FROM orders WHERE id = $1 AND user_id = $2`,
    [id, userId],
  );
  const row = rows[0];
  return row === undefined
    ? undefined
    : {
        orderId: row.id,
        productId: row.product_id,
        qty: row.qty,
        status: row.status,
        acceptedAt: row.accepted_at.toISOString(),
        updatedAt: row.updated_at.toISOString(),
      };
}

/** The product whose owner index says `userId` placed order `id`, if any. */
async function queuedOrderProduct(
  ctx: SaleContext,
  id: string,
  userId: string,
): Promise<ProductLayout | undefined> {
  const products = await ctx.redis.smembers(productsKey(ctx.keyPrefix));
  // One HGET per product, on the caller's home shard (where the buy script wrote the owner):
  // on a Redis Cluster the owner indexes live in different slots.
  const layouts = await Promise.all(products.map((productId) => ctx.layouts.current(productId)));
  const owners = await Promise.all(
    layouts.map((layout) => ctx.redis.hget(homeShard(layout, userId).owners, id)),
  );
  return layouts[owners.indexOf(userId)];
}

/**
 * The caller's own order, or undefined. Another user's order is undefined exactly like an
 * unknown id, so order ids cannot be probed (BOLA). Before the worker persists it, the order
 * is `queued` (known from the owner index the buy script writes). An order the worker found
 * superseded (accepted again under an idempotency key an earlier order holds) answers with
 * that earlier order: it is the key's one order.
 */
export async function findOrder(
  ctx: SaleContext,
  id: string,
  userId: string,
): Promise<OrderView | undefined> {
  const persisted = await persistedOrder(ctx, id, userId);
  if (persisted !== undefined) return persisted;
  const layout = await queuedOrderProduct(ctx, id, userId);
  if (layout === undefined) return undefined;
  const { productId } = layout;
  const holder = await ctx.redis.hget(homeShard(layout, userId).superseded, id);
  if (holder !== null) return persistedOrder(ctx, holder, userId);
  // The worker may have persisted it between our two reads: PG has the newer answer.
  return (
    (await persistedOrder(ctx, id, userId)) ?? {
      orderId: id,
      productId,
      status: OrderStatus.Queued,
    }
  );
}
