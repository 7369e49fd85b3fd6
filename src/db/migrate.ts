import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { databaseParts } from '../config.js';
import { ServiceUnavailableError } from '../domain/errors.js';
import { connectPostgres } from './pool.js';

/** sql/ at the package root, whether running from src/ (tests) or dist/. */
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
const MIGRATION_FILE = /^(\d{6})_[a-z0-9_]+\.sql$/;
// An arbitrary constant shared by every fsale process: pg_advisory_lock(key) serialises
// migrators, so 8 processes started together apply each file exactly once.
const MIGRATION_LOCK_KEY = 0x0f5a1e;

export interface MigrationResult {
  database: string;
  created: boolean;
  applied: string[];
  alreadyApplied: string[];
}

export async function listMigrations(dir = SQL_DIR): Promise<string[]> {
  const names = (await readdir(dir)).filter((name) => MIGRATION_FILE.test(name));
  return names.sort();
}

/** Creates the database if missing. Tolerates another process creating it at the same moment. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const { name, maintenanceUrl } = databaseParts(databaseUrl);
  const client = new pg.Client({
    connectionString: maintenanceUrl,
    connectionTimeoutMillis: 5_000,
  });
  try {
    await client.connect();
  } catch (error) {
    throw new ServiceUnavailableError('PostgreSQL', maintenanceUrl, error);
  }
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount !== 0) return false;
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      return true;
    } catch (error) {
      // 42P04 duplicate_database, or 23505 when two CREATEs race on pg_database's unique index.
      const code = (error as { code?: string }).code;
      if (code === '42P04' || code === '23505') return false;
      throw error;
    }
  } finally {
    await client.end();
  }
}

export async function migrate(databaseUrl: string, dir = SQL_DIR): Promise<MigrationResult> {
  const created = await ensureDatabase(databaseUrl);
  const files = await listMigrations(dir);
  const pool = await connectPostgres(databaseUrl, { max: 1, applicationName: 'fsale migrate' });
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  try {
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      try {
        await client.query(`CREATE TABLE IF NOT EXISTS fsale_migrations (
          name text PRIMARY KEY,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
        const done = new Set(
          (await client.query<{ name: string }>('SELECT name FROM fsale_migrations')).rows.map(
            (row) => row.name,
          ),
        );
        for (const file of files) {
          if (done.has(file)) {
            alreadyApplied.push(file);
            continue;
          }
          const sql = await readFile(`${dir}/${file}`, 'utf8');
          await client.query('BEGIN');
          try {
            await client.query(sql);
            await client.query('INSERT INTO fsale_migrations (name) VALUES ($1)', [file]);
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK');
            throw new Error(`migration ${file} failed: ${(error as Error).message}`, {
              cause: error,
            });
          }
          applied.push(file);
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      }
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
  return { database: databaseParts(databaseUrl).name, created, applied, alreadyApplied };
}
