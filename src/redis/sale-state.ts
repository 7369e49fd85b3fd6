// The per-product sale state the workers and the API read outside the buy script.
import type { Redis } from './client.js';
import { PRODUCT_ID, productKeys, productsKey } from './keys.js';

/** The products seeded under `prefix` (the streams the order workers read), sorted. */
export async function saleProductIds(redis: Redis, prefix: string): Promise<string[]> {
  const ids = await redis.smembers(productsKey(prefix));
  // Anything else in the set was not written by seed: never build a key from it.
  return ids.filter((id) => PRODUCT_ID.test(id)).sort();
}

/** The units left of every seeded product, as Redis holds them (one GET per product: slots). */
export async function stockLevels(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const ids = await saleProductIds(redis, prefix);
  const stocks = await Promise.all(ids.map((id) => redis.get(productKeys(prefix, id).stock)));
  return new Map(ids.map((id, i) => [id, Math.max(0, Number(stocks[i] ?? 0))]));
}
