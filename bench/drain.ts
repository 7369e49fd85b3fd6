// How fast does ONE `fsale work orders` process drain a full order stream into PostgreSQL?
//
// Pre-fills a product's stream with --orders entries (the buy script's exact format, Redis
// stock decremented to match), starts the built worker as a child process, and measures the
// time from its first status line to the line that reports every order persisted. Each run
// uses a fresh key prefix and a fresh database on the local services, both removed at the
// end; nothing else is touched. Verifies PG rows = orders, remaining = 0, nothing pending.
//
//   npm run build && node --import tsx bench/drain.ts [--orders 100000] [--batch 500,1000]
//                                                     [--concurrency 1,2]
//                                                     [--runs 1] [--json]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { DEFAULTS } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { ORDER_GROUP, productKeys } from '../src/redis/keys.js';
import { seedProduct } from '../src/sale/seed.js';
import { dropDatabaseIfOurs, prefillOrders, runWorkerUntil } from './lib.js';

const PRODUCT = 'drain';

interface DrainResult {
  batch: number;
  concurrency: number;
  orders: number;
  prefillS: number;
  drainS: number;
  ordersPerS: number;
  batches: number;
  avgBatch: number;
  batchP50Ms: number;
  batchP99Ms: number;
  batchMaxMs: number;
  workerCpuPct: number;
  pgRows: number;
  pgRemaining: number;
  pending: number;
  ok: boolean;
}

interface StatusLine {
  event: string;
  persisted?: number;
  batches?: number;
  batchP50Ms?: number;
  batchP99Ms?: number;
  batchMaxMs?: number;
}

async function drainOnce(orders: number, batch: number, concurrency: number): Promise<DrainResult> {
  const tag = randomBytes(4).toString('hex');
  const keyPrefix = `bench_${tag}`;
  const serverUrl = new URL(process.env.DATABASE_URL ?? DEFAULTS.databaseUrl);
  serverUrl.pathname = `/fsale_bench_${tag}`;
  const databaseUrl = serverUrl.toString();
  const redisUrl = process.env.REDIS_URL ?? DEFAULTS.redisUrl;

  await migrate(databaseUrl);
  const pool = await connectPostgres(databaseUrl, { max: 2, applicationName: 'bench drain' });
  const redis = await connectRedis(redisUrl);
  try {
    await seedProduct({ pool, redis, keyPrefix }, { productId: PRODUCT, stock: orders });
    const keys = productKeys(keyPrefix, PRODUCT);

    const prefillStart = performance.now();
    await prefillOrders(redis, keyPrefix, PRODUCT, orders);
    const prefillS = (performance.now() - prefillStart) / 1000;

    const run = await runWorkerUntil(
      ['work', 'orders', '--batch', String(batch), '--concurrency', String(concurrency)],
      {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        REDIS_URL: redisUrl,
        DATABASE_URL: databaseUrl,
        FSALE_KEY_PREFIX: keyPrefix,
      },
      (line) => line.event === 'status' && Number(line.persisted ?? 0) >= orders,
      { timeoutMs: 600_000 },
    );
    const started = run.lines.find((l) => l.line.event === 'started');
    if (started === undefined) throw new Error('the worker printed no started line');
    const final = run.lines.findLast((l) => l.line.event === 'stopped')?.line as
      StatusLine | undefined;

    const rows = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    const product = await pool.query<{ remaining: number }>(
      'SELECT remaining FROM products WHERE id = $1',
      [PRODUCT],
    );
    const summary = (await redis.xpending(keys.orders, ORDER_GROUP)) as [number, ...unknown[]];
    const drainS = (run.reached.at - started.at) / 1000;
    const pgRows = rows.rows[0]?.n ?? -1;
    const pgRemaining = product.rows[0]?.remaining ?? -1;
    const batches = final?.batches ?? 0;
    return {
      batch,
      concurrency,
      orders,
      prefillS: round(prefillS, 2),
      drainS: round(drainS, 3),
      ordersPerS: Math.round(orders / drainS),
      batches,
      avgBatch: batches > 0 ? Math.round(orders / batches) : 0,
      batchP50Ms: final?.batchP50Ms ?? 0,
      batchP99Ms: final?.batchP99Ms ?? 0,
      batchMaxMs: final?.batchMaxMs ?? 0,
      workerCpuPct: Math.round(((run.reached.cpuSeconds - started.cpuSeconds) / drainS) * 100),
      pgRows,
      pgRemaining,
      pending: summary[0],
      ok: pgRows === orders && pgRemaining === 0 && summary[0] === 0,
    };
  } finally {
    await deleteMatching(redis, `${keyPrefix}:*`);
    redis.disconnect();
    await pool.end();
    await dropDatabaseIfOurs(databaseUrl, 'fsale_bench_');
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      orders: { type: 'string', default: '100000' },
      batch: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '2' },
      runs: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const orders = Number(values.orders);
  const batches = values.batch.split(',').map(Number);
  const concurrencies = values.concurrency.split(',').map(Number);
  const runs = Number(values.runs);
  if (
    !Number.isSafeInteger(orders) ||
    orders < 1 ||
    [...batches, ...concurrencies].some((b) => !Number.isSafeInteger(b) || b < 1) ||
    !(runs >= 1)
  ) {
    throw new Error('usage: drain.ts [--orders N] [--batch N[,N...]] [--runs N] [--json]');
  }

  const results: DrainResult[] = [];
  // Runs are interleaved (all settings, then again) so that a burst of load from something
  // else on the machine does not land on one setting only.
  for (let run = 0; run < runs; run++) {
    for (const batch of batches) {
      for (const concurrency of concurrencies) {
        const result = await drainOnce(orders, batch, concurrency);
        results.push(result);
        if (!values.json) {
          process.stderr.write(
            `batch ${batch}, concurrency ${concurrency}: ${result.ordersPerS.toLocaleString('en-US')} orders/s (${result.drainS} s)\n`,
          );
        }
      }
    }
  }

  const allOk = results.every((r) => r.ok);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ version: 1, bench: 'drain', results, ok: allOk })}\n`);
  } else {
    const table = new Table({
      style: { head: [], border: [] },
      head: [
        'batch',
        'in flight',
        'orders',
        'drain s',
        'orders/s',
        'batches',
        'avg batch',
        'p50 ms',
        'p99 ms',
        'max ms',
        'worker CPU',
        'PG rows',
        'remaining',
        'pending',
      ],
    });
    for (const r of results) {
      table.push([
        r.batch,
        r.concurrency,
        r.orders.toLocaleString('en-US'),
        r.drainS,
        r.ordersPerS.toLocaleString('en-US'),
        r.batches,
        r.avgBatch,
        r.batchP50Ms,
        r.batchP99Ms,
        r.batchMaxMs,
        `${r.workerCpuPct} %`,
        r.pgRows.toLocaleString('en-US'),
        r.pgRemaining,
        r.pending,
      ]);
    }
    process.stdout.write(`${table.toString()}\n`);
    process.stdout.write(
      allOk
        ? 'verified: every order in PG exactly once, stock taken, nothing pending\n'
        : 'VERIFICATION FAILED\n',
    );
  }
  if (!allOk) process.exitCode = 1;
}

await main();
