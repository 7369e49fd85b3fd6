import { findOwnedOrder } from '../db/orders.js';
import { OrderStatus } from '../domain/order-status.js';
import {
  homeShard,
  productOfOwnedOrder,
  saleProductIds,
  supersedingOrder,
} from '../redis/sale-state.js';
import type { ApiContext } from './app.js';

export interface OrderView {
  orderId: string;
  productId: string;
  status: OrderStatus;
  qty?: number;
  acceptedAt?: string;
  updatedAt?: string;
}

async function persistedOrder(
  ctx: ApiContext,
  id: string,
  userId: string,
): Promise<OrderView | undefined> {
  const order = await findOwnedOrder(ctx.pool, id, userId);
  return order === undefined
    ? undefined
    : {
        orderId: order.id,
        productId: order.productId,
        qty: order.qty,
        status: order.status,
        acceptedAt: order.acceptedAt.toISOString(),
        updatedAt: order.updatedAt.toISOString(),
      };
}

/**
 * The caller's own order, or undefined. Another user's order is undefined exactly like an
 * unknown id, so order ids cannot be probed (BOLA). Before the worker persists it, the order
 * is `queued` (known from the owner index the buy script writes). An order the worker found
 * superseded (accepted again under an idempotency key an earlier order holds) answers with
 * that earlier order: it is the key's one order.
 */
export async function findOrder(
  ctx: ApiContext,
  id: string,
  userId: string,
): Promise<OrderView | undefined> {
  const persisted = await persistedOrder(ctx, id, userId);
  if (persisted !== undefined) return persisted;
  const products = await saleProductIds(ctx.redis, ctx.keyPrefix);
  const layouts = await Promise.all(products.map((productId) => ctx.layouts.current(productId)));
  const layout = await productOfOwnedOrder(ctx.redis, layouts, id, userId);
  if (layout === undefined) return undefined;
  const { productId } = layout;
  const holder = await supersedingOrder(ctx.redis, homeShard(layout, userId), id);
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
