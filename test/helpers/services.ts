// Per-file isolation: every test file gets its own Redis key prefix and its own PostgreSQL
// database (migrated), so files run in parallel and never see each other's data. Only what
// this file created is deleted afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { databaseParts } from '../../src/config.js';
import { migrate } from '../../src/db/migrate.js';
import { connectPostgres, type Pool } from '../../src/db/pool.js';
import { connectRedis, deleteMatching, type Redis } from '../../src/redis/client.js';

/** The run uses a private Redis Cluster (`npm run test:cluster`, TEST_REDIS=cluster). */
export const ON_CLUSTER = process.env.TEST_REDIS === 'cluster';

export const TEST_JWT_SECRET = 'test-secret-for-fsale-only-0123456789';

export interface TestServices {
  redisUrl: string;
  databaseUrl: string;
  keyPrefix: string;
  redis: Redis;
  pool: Pool;
  /** Environment for child `fsale` processes pointing at this file's prefix and database. */
  env: Record<string, string>;
}

export function uniqueName(kind: string): string {
  return `t${kind}_${randomBytes(5).toString('hex')}`;
}

/** A database URL on the test server with the given database name. */
export function databaseUrlFor(name: string): string {
  const url = new URL(inject('databaseUrl'));
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const { name, maintenanceUrl } = databaseParts(databaseUrl);
  const client = new pg.Client({ connectionString: maintenanceUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

// What a test file set up (databases, prefixes, servers) is torn down when the file ends, in
// reverse order. Registered here, at import, because vitest never runs an afterAll registered
// while a beforeAll runs, which is where these helpers are called.
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs `cleanup` when this test file ends (after everything registered later). */
export function atFileEnd(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

/** Creates a prefix and a migrated database for this test file; both are removed after it. */
export async function useTestServices(): Promise<TestServices> {
  const redisUrl = inject('redisUrl');
  const keyPrefix = uniqueName('p');
  const databaseUrl = databaseUrlFor(`fsale_${uniqueName('db')}`);
  await migrate(databaseUrl);
  const pool = await connectPostgres(databaseUrl, { max: 20 });
  const redis = await connectRedis(redisUrl);
  atFileEnd(async () => {
    await deleteMatching(redis, `${keyPrefix}:*`);
    redis.disconnect();
    await pool.end();
    await dropDatabase(databaseUrl);
  });
  return {
    redisUrl,
    databaseUrl,
    keyPrefix,
    redis,
    pool,
    env: {
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      FSALE_KEY_PREFIX: keyPrefix,
      FSALE_JWT_SECRET: TEST_JWT_SECRET,
    },
  };
}
