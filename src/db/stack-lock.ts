// One stack per database. `fsale up` and `fsale demo` hold this session-level advisory lock
// for as long as their stack runs. The key prefix separates stacks in Redis, not in
// PostgreSQL: the payment jobs and orders of one database are every stack's, so a second
// stack's payment worker would charge the first one's orders through its own gateway (and the
// first stack's audit would then find paid orders its gateway never charged).
import pg from 'pg';
import { ServiceUnavailableError, UsageError, redactUrl } from '../domain/errors.js';

// An arbitrary constant, distinct from the migration lock's (src/db/migrate.ts).
const STACK_LOCK_KEY = 0x0f5a1f;

export interface DatabaseClaim {
  release(): Promise<void>;
}

/** Claims the database for one stack, or throws a UsageError naming the holder. */
export async function claimDatabaseForStack(databaseUrl: string): Promise<DatabaseClaim> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'fsale stack' });
  try {
    await client.connect();
  } catch (error) {
    throw new ServiceUnavailableError('PostgreSQL', databaseUrl, error);
  }
  // A lost connection releases the lock on the server; nothing here can do better than that.
  client.on('error', () => undefined);
  let holder: number | undefined;
  try {
    const claimed = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
      STACK_LOCK_KEY,
    ]);
    if (claimed.rows[0]?.ok === true) return { release: () => client.end().catch(() => undefined) };
    // A one-bigint advisory key is (classid, objid, objsubid) = (high 32 bits, low 32 bits, 1).
    const found = await client.query<{ pid: number }>(
      `SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1 AND objsubid = 1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [STACK_LOCK_KEY],
    );
    holder = found.rows[0]?.pid;
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new ServiceUnavailableError('PostgreSQL', databaseUrl, error);
  }
  await client.end().catch(() => undefined);
  throw new UsageError(
    `another fsale stack (up or demo) is running on ${redactUrl(databaseUrl)}` +
      (holder === undefined ? '' : ` (its PostgreSQL session pid ${holder})`) +
      ': stop it, or give this one its own database with --database-url',
  );
}
