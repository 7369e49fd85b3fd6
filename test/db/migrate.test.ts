import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { listMigrations } from '../../src/db/migrate.js';
import { runCli } from '../helpers/cli.js';
import { databaseUrlFor, dropDatabase, uniqueName } from '../helpers/services.js';

describe('fsale migrate', () => {
  const databaseUrl = databaseUrlFor(`fsale_${uniqueName('mig')}`);
  afterAll(() => dropDatabase(databaseUrl));

  it('8 processes started at the same moment create the database and apply each file exactly once', async () => {
    const files = await listMigrations();
    expect(files.length).toBeGreaterThan(0);

    const results = await Promise.all(
      Array.from({ length: 8 }, () => runCli(['migrate', '--json'], { DATABASE_URL: databaseUrl })),
    );
    for (const result of results) expect(result.stderr).toBe('');
    expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));

    const reports = results.map(
      (r) =>
        JSON.parse(r.stdout) as { created: boolean; applied: string[]; alreadyApplied: string[] },
    );
    // Every file applied by exactly one process, and seen as already applied by the others.
    expect(reports.flatMap((r) => r.applied).sort()).toEqual(files);
    for (const report of reports)
      expect([...report.applied, ...report.alreadyApplied].sort()).toEqual(files);
    expect(reports.filter((r) => r.created)).toHaveLength(1);

    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const rows = await client.query<{ name: string }>(
        'SELECT name FROM fsale_migrations ORDER BY name',
      );
      expect(rows.rows.map((r) => r.name)).toEqual(files);
      const tables = await client.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining([
          'fsale_migrations',
          'orders',
          'payments',
          'products',
          'stock_releases',
        ]),
      );
    } finally {
      await client.end();
    }

    const again = await runCli(['migrate', '--json'], { DATABASE_URL: databaseUrl });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ created: false, applied: [] });
  });
});
