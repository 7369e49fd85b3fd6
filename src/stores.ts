import type { Pool } from './db/pool.js';
import type { Redis } from './redis/client.js';

/**
 * The sale's data stores as every component receives them (workers, reconcile, seed, the API's
 * buy modes): PostgreSQL, the source of truth; Redis, the hot copy; and the key prefix that
 * scopes this sale's Redis keys. Passed in explicitly, never imported as a global.
 */
export interface Stores {
  pool: Pool;
  redis: Redis;
  keyPrefix: string;
}
