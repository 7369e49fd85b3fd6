import pg from 'pg';
import { ServiceUnavailableError } from '../domain/errors.js';

// bigint (int8) columns hold cents and counts that fit in a double; parse them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  max?: number;
  applicationName?: string;
}

/** A pool whose first connection has been proven, so a dead server is reported at start. */
export async function connectPostgres(url: string, options: PoolOptions = {}): Promise<Pool> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5_000,
    application_name: options.applicationName ?? 'fsale',
    // A process frozen inside a transaction (SIGSTOP, a stalled VM) holds its row locks and
    // blocks whoever takes over its work; the server ends such a session after this long, and
    // the frozen process's next statement fails instead of committing stale work.
    idle_in_transaction_session_timeout: 20_000,
  });
  // An idle client losing its server (a restart) must not crash the process; the pool
  // replaces it and the next query reports the error where it can be handled.
  pool.on('error', () => undefined);
  // The same for a client that is checked out (between the statements of a transaction): the
  // pool listens only to idle clients, and an unheard 'error' event kills the process (found
  // by a PostgreSQL restart under the payment worker). Its next query fails instead.
  pool.on('connect', (client) => client.on('error', () => undefined));
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new ServiceUnavailableError('PostgreSQL', url, error);
  }
  return pool;
}

/** Runs `work` in a transaction on one client: COMMIT on success, ROLLBACK on any error. */
export function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return transaction(pool, 'BEGIN', work);
}

/** The same, with one snapshot for every statement (REPEATABLE READ). */
export function inRepeatableRead<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return transaction(pool, 'BEGIN ISOLATION LEVEL REPEATABLE READ', work);
}

async function transaction<T>(
  pool: Pool,
  begin: string,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** One round trip to the server: readiness checks. */
export async function pingPostgres(pool: Pool): Promise<void> {
  await pool.query('SELECT 1');
}
