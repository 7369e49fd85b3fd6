// How the workers tell a bad row from a bad moment. A bad row (PostgreSQL refuses the data
// itself) will fail the same way every time, so it is isolated and dead-lettered. Anything
// else (connection lost, server restarting, deadlock, serialization failure, even an
// unmigrated database) is a bad moment: retry the same work with backoff, never drop it.

interface PgErrorFields {
  code?: unknown;
  table?: unknown;
}

function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as PgErrorFields).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** SQLSTATE class 22 (data exception) or 23 (integrity constraint violation). */
export function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

/** The CHECK on products.remaining refused a decrement: Redis accepted more than PG holds. */
export function isStockGuardViolation(error: unknown): boolean {
  return sqlState(error) === '23514' && (error as PgErrorFields).table === 'products';
}
