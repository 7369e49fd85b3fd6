import { connectPostgres, type Pool } from './db/pool.js';
import { connectRedis, type Redis } from './redis/client.js';

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

export interface StoresConnection {
  databaseUrl: string;
  redisUrl: string;
  keyPrefix: string;
  /** PostgreSQL's application_name, and (dashed) the Redis client name [default: fsale]. */
  name?: string | undefined;
  /** PostgreSQL connections at most. */
  poolMax: number;
  /** Redis reconnects in the background for as long as the process runs (long-running ones). */
  persistent?: boolean | undefined;
}

/**
 * Connects PostgreSQL, then Redis, runs `use` with them, and closes both however `use` ends.
 * A Redis that cannot be reached closes the pool already opened before the error goes up.
 */
export async function withStores<T>(
  connection: StoresConnection,
  use: (stores: Stores) => Promise<T>,
): Promise<T> {
  const { name } = connection;
  const pool = await connectPostgres(connection.databaseUrl, {
    max: connection.poolMax,
    ...(name === undefined ? {} : { applicationName: name }),
  });
  try {
    const redis = await connectRedis(connection.redisUrl, {
      ...(name === undefined ? {} : { name: name.replaceAll(' ', '-') }),
      ...(connection.persistent === undefined ? {} : { persistent: connection.persistent }),
    });
    try {
      return await use({ pool, redis, keyPrefix: connection.keyPrefix });
    } finally {
      redis.disconnect();
    }
  } finally {
    await pool.end();
  }
}
