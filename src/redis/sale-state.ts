// The per-product sale state the workers and the API read outside the buy script.
import type { Redis } from './client.js';
import { PRODUCT_ID, productKeys, productsKey } from './keys.js';

/** The products seeded under `prefix` (the streams the order workers read), sorted. */
export async function saleProductIds(redis: Redis, prefix: string): Promise<string[]> {
  const ids = await redis.smembers(productsKey(prefix));
  // Anything else in the set was not written by seed: never build a key from it.
  return ids.filter((id) => PRODUCT_ID.test(id)).sort();
}

/**
 * The product whose owner index (written by the buy script) says `userId` placed order
 * `orderId`, if any: an order accepted but not yet persisted.
 */
export async function productOfOwnedOrder(
  redis: Redis,
  prefix: string,
  orderId: string,
  userId: string,
): Promise<string | undefined> {
  const products = await redis.smembers(productsKey(prefix));
  // One HGET per product: on a Redis Cluster the owner indexes live in different slots.
  const owners = await Promise.all(
    products.map((productId) => redis.hget(productKeys(prefix, productId).owners, orderId)),
  );
  return products[owners.indexOf(userId)];
}

/** The order that holds the idempotency key `orderId` was accepted again under, if superseded. */
export function supersedingOrder(
  redis: Redis,
  prefix: string,
  productId: string,
  orderId: string,
): Promise<string | null> {
  return redis.hget(productKeys(prefix, productId).superseded, orderId);
}
