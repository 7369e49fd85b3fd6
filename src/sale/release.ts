import type { Redis } from '../redis/client.js';
import type { Pool } from '../db/pool.js';
import { markReleaseApplied } from '../db/releases.js';
import { homeShard, readLayout } from '../redis/sale-state.js';
import { releaseUnits } from '../redis/scripts.js';

export interface Reservation {
  orderId: string;
  productId: string;
  userId: string;
  qty: number;
}

/**
 * Gives the units back in Redis (stock, the user's count, a stock publish that re-opens a
 * sold-out product) with the idempotent release script, then marks the release applied. Safe
 * to run any number of times, concurrently: the script applies each order once.
 */
export async function applyReleaseToRedis(
  redis: Redis,
  pool: Pool,
  prefix: string,
  reservation: Reservation,
): Promise<boolean> {
  // The order's units came from its buyer's home shard (on a sharded product), so they go back there.
  const layout = await readLayout(redis, prefix, reservation.productId);
  const applied = await releaseUnits(redis, homeShard(layout, reservation.userId), reservation);
  await markReleaseApplied(pool, reservation.orderId);
  return applied;
}
