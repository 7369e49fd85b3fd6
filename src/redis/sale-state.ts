// The per-product sale state the workers and the API read outside the buy script.
import type { Redis } from './client.js';
import { PRODUCT_ID, productsKey } from './keys.js';

/** The products seeded under `prefix` (the streams the order workers read), sorted. */
export async function saleProductIds(redis: Redis, prefix: string): Promise<string[]> {
  const ids = await redis.smembers(productsKey(prefix));
  // Anything else in the set was not written by seed: never build a key from it.
  return ids.filter((id) => PRODUCT_ID.test(id)).sort();
}
