// bench/modes.ts — Approach 1 vs Approach 2, measured side by side in one run on one machine:
//   sync  `fsale serve --mode sync`: the buy is one PostgreSQL transaction, answered 201
//   queue `fsale serve` (default) + `fsale work orders`: Redis reserves, answers 202, the order
//         worker persists (it runs during the cases, so both modes persist every order and
//         share the machine with what persisting costs)
// Cases, each on a fresh product with 100,000 units (nothing sells out):
//   closed model (autocannon) at 50 and 500 connections, after a warm-up;
//   an open-model spike (fixed arrival times, latency from the intended send time, so a slow
//   server cannot hide its queue): --spike-rate arrivals/s for --spike-seconds.
// For each: requests/s, p50/p99, errors (anything but the mode's accept, and socket errors or
// timeouts) and the most PostgreSQL connections the bench database had open (and active)
// while the case ran, polled from pg_stat_activity every 100 ms.
// Usage: npm run bench:modes [-- --duration 8 --warmup 2 --connections 50,500 --json]
// `run()` returns the same figures for an orchestrator (`npm run bench`).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { runFlood } from '../src/load/flood.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { productKeys } from '../src/redis/keys.js';
import type { BuyMode } from '../src/sale/buy.js';
import { seedProduct } from '../src/sale/seed.js';
import { WHOLE } from '../src/load/slices.js';
import {
  benchScope,
  buyRequests,
  dropDatabaseIfOurs,
  load,
  machine,
  printTable,
  startServer,
  type ChildServer,
  type Machine,
} from './lib.js';

export interface ModesOptions {
  /** Measured seconds of each closed-model case. */
  durationSeconds: number;
  warmupSeconds: number;
  connections: number[];
  /** Open-model spike: arrivals per second, for spikeSeconds. */
  spikeRate: number;
  spikeSeconds: number;
  /** Sync mode's PostgreSQL pool per API process (`--pg-pool-size`). */
  pgPoolSize: number;
  redisUrl: string;
  /** A URL on the PostgreSQL server; the bench creates and drops its own database there. */
  databaseUrl: string;
  log: (line: string) => void;
}

export interface ModeRow {
  mode: BuyMode;
  case: string;
  model: 'closed' | 'open';
  connections: number | null;
  /** Open model: arrivals/s asked for, and sent. */
  targetRate: number | null;
  sentRate: number | null;
  /** Open model: the load generator could not keep the schedule (shares the cores). */
  generatorLimited: boolean;
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  requests: number;
  accepted: number;
  /** Answers other than the mode's accept (201 or 202), plus socket errors and timeouts. */
  errors: number;
  statuses: Record<string, number>;
  /** Most connections to the bench database (API + order worker), and most of them active. */
  pgConnections: number;
  pgActive: number;
  /** Accepted orders already in PostgreSQL when the case ended (queue mode persists later). */
  persistedAtEnd: number;
}

export interface ModesResult {
  benchmark: 'modes';
  machine: Machine;
  settings: Omit<ModesOptions, 'log' | 'redisUrl' | 'databaseUrl'> & { stock: number };
  rows: ModeRow[];
  /** One line per case: which mode is ahead, by how much. */
  crossover: string[];
}

export const MODES_DEFAULTS: Omit<ModesOptions, 'log'> = {
  durationSeconds: 8,
  warmupSeconds: 2,
  connections: [50, 500],
  spikeRate: 5_000,
  spikeSeconds: 2,
  pgPoolSize: 10,
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
};

const STOCK = 100_000;
const USERS = 50_000;
const ACCEPT: Record<BuyMode, string> = { queue: '202', sync: '201' };
const BENCH_APP = 'fsale bench';

interface ConnectionPeak {
  total: number;
  active: number;
}

/** Polls pg_stat_activity for the bench database until stopped; resolves with the peaks. */
function watchConnections(databaseUrl: string): { stop: () => Promise<ConnectionPeak> } {
  const peak: ConnectionPeak = { total: 0, active: 0 };
  const client = new pg.Client({ connectionString: databaseUrl, application_name: BENCH_APP });
  const stopping = new AbortController();
  const loop = (async () => {
    await client.connect();
    while (!stopping.signal.aborted) {
      const { rows } = await client.query<{ total: number; active: number }>(
        `SELECT count(*)::int AS total, count(*) FILTER (WHERE state = 'active')::int AS active
           FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND application_name <> $1`,
        [BENCH_APP],
      );
      peak.total = Math.max(peak.total, rows[0]?.total ?? 0);
      peak.active = Math.max(peak.active, rows[0]?.active ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.end();
  })();
  return {
    stop: async () => {
      stopping.abort();
      await loop;
      return peak;
    },
  };
}

/** A long-running child that prints no URL (the order worker); stopped with SIGTERM. */
function startWorker(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}

const ratio = (a: number, b: number) => (b === 0 ? Infinity : a / b);

function crossoverLines(rows: ModeRow[]): string[] {
  const cases = [...new Set(rows.map((r) => r.case))];
  return cases.map((name) => {
    const q = rows.find((r) => r.case === name && r.mode === 'queue');
    const s = rows.find((r) => r.case === name && r.mode === 'sync');
    if (q === undefined || s === undefined) return `${name}: incomplete`;
    if (q.model === 'open') {
      // Both are offered the same arrivals: the one that accepts more is ahead, and only at
      // equal acceptance does latency decide (quick 503 refusals would flatter a latency).
      const better =
        q.accepted !== s.accepted
          ? q.accepted > s.accepted
            ? 'queue'
            : 'sync'
          : (q.p99Ms ?? Infinity) <= (s.p99Ms ?? Infinity)
            ? 'queue'
            : 'sync';
      return `${name}: ${better} mode ahead, accepted ${q.accepted} (queue) vs ${s.accepted} (sync) of ${q.requests}; p50 ${q.p50Ms} / p99 ${q.p99Ms} ms (queue) vs p50 ${s.p50Ms} / p99 ${s.p99Ms} ms (sync), answered ${q.requestsPerSecond} vs ${s.requestsPerSecond} req/s; errors ${q.errors} vs ${s.errors}; PG connections ${q.pgConnections} (queue) vs ${s.pgConnections} (sync)`;
    }
    const faster = q.requestsPerSecond >= s.requestsPerSecond ? 'queue' : 'sync';
    const times = ratio(
      Math.max(q.requestsPerSecond, s.requestsPerSecond),
      Math.min(q.requestsPerSecond, s.requestsPerSecond),
    );
    const p99 =
      q.p99Ms !== null && s.p99Ms !== null
        ? `; p99 ${q.p99Ms} ms (queue) vs ${s.p99Ms} ms (sync)`
        : '';
    return `${name}: ${faster} mode ahead, ${times.toFixed(1)}x the requests/s${p99}; PG connections ${q.pgConnections} (queue) vs ${s.pgConnections} (sync)`;
  });
}

/** Runs both modes through every case; returns the rows (and prints nothing but progress). */
export async function run(options: Partial<ModesOptions> = {}): Promise<ModesResult> {
  const o: ModesOptions = {
    ...MODES_DEFAULTS,
    log: (line) => process.stderr.write(`${line}\n`),
    ...options,
  };
  const scope = benchScope('modes_', { redisUrl: o.redisUrl, serverUrl: o.databaseUrl });
  const { run: id, databaseUrl, keyPrefix, secret, env } = scope;
  const root = fileURLToPath(new URL('..', import.meta.url));

  await migrate(databaseUrl);
  const pool = await connectPostgres(databaseUrl, { max: 2, applicationName: BENCH_APP });
  const redis = await connectRedis(o.redisUrl);
  const ctx = { pool, redis, keyPrefix };
  const buyRequest = buyRequests(scope, USERS, 'mu');
  const persisted = async (productId: string) =>
    (
      await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM orders WHERE product_id = $1',
        [productId],
      )
    ).rows[0]?.n ?? 0;

  /** Units taken from a product so far (warm-up included): what PG must eventually hold. */
  const taken = async (productId: string) =>
    STOCK - Number(await redis.get(productKeys(keyPrefix, productId).stock));

  const rows: ModeRow[] = [];
  try {
    for (const mode of ['queue', 'sync'] as const) {
      const serve = [
        `${root}bin/run.js`,
        'serve',
        '--port',
        '0',
        '--mode',
        mode,
        '--rate-limit',
        '0',
        '--max-queue',
        '100000000',
        ...(mode === 'sync' ? ['--pg-pool-size', String(o.pgPoolSize)] : []),
      ];
      const server: ChildServer = await startServer(process.execPath, serve, env);
      const worker =
        mode === 'queue' ? startWorker([`${root}bin/run.js`, 'work', 'orders'], env) : undefined;
      try {
        for (const connections of o.connections) {
          const productId = `${mode}-c${connections}`;
          await seedProduct(ctx, { productId, stock: STOCK, perUserLimit: STOCK });
          const request = buyRequest(productId);
          o.log(
            `${mode} mode, ${connections} connections: warming up ${o.warmupSeconds} s, measuring ${o.durationSeconds} s`,
          );
          await load('warmup', {
            url: server.url,
            connections,
            durationSeconds: o.warmupSeconds,
            request,
          });
          const watch = watchConnections(databaseUrl);
          const r = await load(`${connections} connections`, {
            url: server.url,
            connections,
            durationSeconds: o.durationSeconds,
            request,
          });
          const peak = await watch.stop();
          const accepted = r.statuses[ACCEPT[mode]] ?? 0;
          const inPg = await persisted(productId);
          rows.push({
            mode,
            case: `closed, ${connections} connections`,
            model: 'closed',
            connections,
            targetRate: null,
            sentRate: null,
            generatorLimited: false,
            requestsPerSecond: r.requestsPerSecond,
            p50Ms: r.p50Ms,
            p99Ms: r.p99Ms,
            requests: r.total,
            accepted,
            errors: r.total - accepted + r.errors + r.timeouts,
            statuses: r.statuses,
            pgConnections: peak.total,
            pgActive: peak.active,
            // The warm-up bought from the same product: compare with every unit taken so far.
            persistedAtEnd: Math.min(1, inPg / Math.max(1, await taken(productId))),
          });
        }

        const productId = `${mode}-spike`;
        await seedProduct(ctx, { productId, stock: STOCK, perUserLimit: STOCK });
        o.log(`${mode} mode, open-model spike: ${o.spikeRate} arrivals/s for ${o.spikeSeconds} s`);
        const watch = watchConnections(databaseUrl);
        const spike = await runFlood({
          url: new URL(server.url),
          productId,
          qty: 1,
          model: {
            kind: 'open',
            shape: { rate: o.spikeRate, rampSeconds: 0, spikes: [] },
            arrivals: 'uniform',
            durationSeconds: o.spikeSeconds,
            requests: undefined,
          },
          users: USERS,
          userPrefix: `spike-${mode}-`,
          keyPrefix: `${id}-${mode}-spike-`,
          jwtSecret: secret,
          retryRatio: 0,
          doubleClick: false,
          seed: 1,
          timeoutMs: 30_000,
          maxInFlight: 2_000,
          pipelining: 1,
          slice: WHOLE,
          maxSendLagMs: 50,
          follow: undefined,
          thresholds: [],
          audit: undefined,
          auditAttempts: 0,
          auditRetryDelayMs: 0,
          preflight: true,
        });
        const peak = await watch.stop();
        const accepted = spike.statusCodes[ACCEPT[mode]] ?? 0;
        const answered = Object.values(spike.statusCodes).reduce((a, b) => a + b, 0);
        rows.push({
          mode,
          case: `open, ${o.spikeRate}/s for ${o.spikeSeconds} s`,
          model: 'open',
          connections: null,
          targetRate: spike.rate.target,
          sentRate: Math.round(spike.rate.achieved),
          generatorLimited: spike.generator.limited,
          requestsPerSecond: Math.round(spike.rate.answeredPerSecond),
          p50Ms: spike.latencyMs?.p50 ?? null,
          p99Ms: spike.latencyMs?.p99 ?? null,
          requests: spike.requests.sent,
          accepted,
          errors: answered - accepted + spike.requests.networkErrors,
          statuses: spike.statusCodes,
          pgConnections: peak.total,
          pgActive: peak.active,
          persistedAtEnd: accepted === 0 ? 1 : Math.min(1, (await persisted(productId)) / accepted),
        });
      } finally {
        if (worker !== undefined) await stopChild(worker);
        await server.stop();
      }
    }
  } finally {
    await deleteMatching(redis, `${keyPrefix}:*`);
    redis.disconnect();
    await pool.end();
    await dropDatabaseIfOurs(databaseUrl, 'fsale_bench_modes_');
  }

  return {
    benchmark: 'modes',
    machine: await machine(o.redisUrl, o.databaseUrl),
    settings: {
      durationSeconds: o.durationSeconds,
      warmupSeconds: o.warmupSeconds,
      connections: o.connections,
      spikeRate: o.spikeRate,
      spikeSeconds: o.spikeSeconds,
      pgPoolSize: o.pgPoolSize,
      stock: STOCK,
    },
    rows,
    crossover: crossoverLines(rows),
  };
}

function print(result: ModesResult): void {
  printTable(
    [
      'mode',
      'case',
      'req/s',
      'p50 ms',
      'p99 ms',
      'requests',
      'accepted',
      'errors',
      'PG conns (active)',
      'in PG at end',
    ],
    result.rows.map((r) => [
      r.mode,
      r.case +
        (r.sentRate !== null ? ` (sent ${r.sentRate}/s)` : '') +
        (r.generatorLimited ? ', generator-limited' : ''),
      r.requestsPerSecond,
      r.p50Ms ?? '-',
      r.p99Ms ?? '-',
      r.requests,
      r.accepted,
      r.errors,
      `${r.pgConnections} (${r.pgActive})`,
      `${Math.round(r.persistedAtEnd * 100)} %`,
    ]),
  );
  for (const line of result.crossover) console.log(line);
  const m = result.machine;
  console.log(
    `${m.cores} cores (${m.cpu}), Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}, ${m.date}; stock ${result.settings.stock} per case, sync pool ${result.settings.pgPoolSize}`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: String(MODES_DEFAULTS.durationSeconds) },
      warmup: { type: 'string', default: String(MODES_DEFAULTS.warmupSeconds) },
      connections: { type: 'string', default: MODES_DEFAULTS.connections.join(',') },
      'spike-rate': { type: 'string', default: String(MODES_DEFAULTS.spikeRate) },
      'spike-seconds': { type: 'string', default: String(MODES_DEFAULTS.spikeSeconds) },
      'pg-pool-size': { type: 'string', default: String(MODES_DEFAULTS.pgPoolSize) },
      json: { type: 'boolean', default: false },
    },
  });
  const result = await run({
    durationSeconds: Number(values.duration),
    warmupSeconds: Number(values.warmup),
    connections: values.connections.split(',').map(Number),
    spikeRate: Number(values['spike-rate']),
    spikeSeconds: Number(values['spike-seconds']),
    pgPoolSize: Number(values['pg-pool-size']),
  });
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else print(result);
}
