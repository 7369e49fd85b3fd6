// bench/sse.ts — N SSE clients on ONE API process (clients in separate processes), a stock
// change published every 10 ms for 10 s: the lag from PUBLISH to receipt (p50/p99), memory
// per client, and events delivered per second. Usage:
//   npm run bench:sse [-- --clients 10000 --processes 4 --duration 10 --json]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { productKeys } from '../src/redis/keys.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  benchScope,
  dropDatabaseIfOurs,
  machine,
  openSseClients,
  printTable,
  publishStockChanges,
  rssBytes,
  startServer,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    processes: { type: 'string', default: '4' },
    duration: { type: 'string', default: '10' },
    'every-ms': { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const clients = Number(args.clients);
const processes = Number(args.processes);
const durationMs = Number(args.duration) * 1000;
const everyMs = Number(args['every-ms']);
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));

const scope = benchScope();
const { redisUrl, databaseUrl, keyPrefix } = scope;
const START = 1_000_000;

await migrate(databaseUrl);
const pool = await connectPostgres(databaseUrl);
const redis = await connectRedis(redisUrl);
await seedProduct({ pool, redis, keyPrefix }, { productId: 'live', stock: START });
const root = fileURLToPath(new URL('..', import.meta.url));

const api = await startServer(
  process.execPath,
  // Every client process connects from 127.0.0.1, so the per-address share is lifted too.
  [
    `${root}bin/run.js`,
    'serve',
    '--port',
    '0',
    '--sse-max-stock-streams',
    String(clients + 100),
    '--sse-max-per-ip',
    String(clients + 100),
  ],
  scope.env,
);
const apiPid = api.child.pid ?? 0;
try {
  await new Promise((r) => setTimeout(r, 500));
  const rssBefore = rssBytes(apiPid);
  log(`opening ${clients} SSE clients from ${processes} processes`);
  const sse = await openSseClients(`${api.url}/stock/live/stream`, clients, processes);
  await new Promise((r) => setTimeout(r, 1000));
  const rssAfter = rssBytes(apiPid);
  log(`all connected; publishing a change every ${everyMs} ms for ${durationMs / 1000} s`);

  const channel = productKeys(keyPrefix, 'live').stockChannel;
  const published = await publishStockChanges(redis, channel, START, durationMs, everyMs);
  await new Promise((r) => setTimeout(r, 1000)); // let the last coalesced events arrive
  const reports = await sse.report(published);
  const lags = reports.flatMap((r) => r.lags).sort((a, b) => a - b);
  const pct = (p: number) =>
    +(lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))] ?? NaN).toFixed(1);
  const events = reports.reduce((sum, r) => sum + r.events, 0);
  const summary = {
    benchmark: 'sse',
    machine: await machine(redisUrl, scope.serverUrl),
    clients: reports.reduce((sum, r) => sum + r.connected, 0),
    changes: published.length,
    everyMs,
    lagMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: +(lags.at(-1) ?? NaN).toFixed(1) },
    eventsPerSecond: Math.round(events / (durationMs / 1000)),
    memoryPerClientKiB: +((rssAfter - rssBefore) / clients / 1024).toFixed(1),
    apiRssMiB: Math.round(rssAfter / 2 ** 20),
    target: { p99LagMs: 250 },
  };
  if (args.json) console.log(JSON.stringify(summary, null, 2));
  else {
    printTable(
      [
        'clients',
        'changes',
        'lag p50 ms',
        'lag p99 ms',
        'lag max ms',
        'events/s',
        'KiB/client',
        'API RSS MiB',
      ],
      [
        [
          summary.clients,
          summary.changes,
          summary.lagMs.p50,
          summary.lagMs.p99,
          summary.lagMs.max,
          summary.eventsPerSecond,
          summary.memoryPerClientKiB,
          summary.apiRssMiB,
        ],
      ],
    );
    console.log(`p99 lag ${summary.lagMs.p99} ms (target <= 250 ms)`);
  }
  sse.close();
} finally {
  await api.stop();
  await deleteMatching(redis, `${keyPrefix}:*`);
  redis.disconnect();
  await pool.end();
  await dropDatabaseIfOurs(databaseUrl, 'fsale_bench_');
}
