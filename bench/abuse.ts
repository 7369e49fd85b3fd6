// bench/abuse.ts — the buy path with and without abusive clients, side by side in one run, on
// one `fsale serve` process:
//   (a) buys alone
//   (b) the same buys while 200 SSE clients never read their stock stream, Slowloris
//       connections dribble request heads and oversized bodies keep arriving
// The ratio of the p99s is the cost of the abuse (target ≤ 3). autocannon drives the buys from
// this process; the never-reading clients are held by a Python child (see abuse-traffic.ts).
// Usage:
//   npm run bench:abuse [-- --duration 10 --connections 50 --json]
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  openStalledSseClients,
  sendOversized,
  startSlowloris,
  type StalledSseClients,
  type Slowloris,
} from '../test/helpers/abuse-traffic.js';
import {
  benchScope,
  buyRequests,
  cpuSeconds,
  dropDatabaseIfOurs,
  load,
  machine,
  printTable,
  SERVE_FOR_LOAD,
  startServer,
  type LoadResult,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    'sse-clients': { type: 'string', default: '200' },
    slowloris: { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const connections = Number(args.connections);
const sseClients = Number(args['sse-clients']);
const slowlorisCount = Number(args.slowloris);
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const scope = benchScope();
const { run, redisUrl, databaseUrl, keyPrefix, env } = scope;

await migrate(databaseUrl);
const pool = await connectPostgres(databaseUrl);
const redis = await connectRedis(redisUrl);
await seedProduct(
  { pool, redis, keyPrefix },
  { productId: 'plenty', stock: 50_000_000, perUserLimit: 1_000_000 },
);

const buyRequest = buyRequests(scope, 100_000, 'ab')('plenty');

interface CaseResult extends LoadResult {
  /** Server CPU per buy, µs: what the abuse costs the process besides latency. */
  serverCpuUsPerRequest: number;
}

/** The abuse of scenario 11, until `stop()`: never-reading streams, Slowloris, big bodies. */
async function startAbuse(url: string): Promise<{ stop: () => void; summary: () => string }> {
  const streams: StalledSseClients = await openStalledSseClients(
    url,
    '/stock/plenty/stream',
    sseClients,
  );
  const slowloris: Slowloris = startSlowloris(url, slowlorisCount, 1_000);
  const refused = new Map<number, number>();
  const oversizedOn = { sending: true };
  const { authorization } = buyRequest().headers;
  const auth = { authorization: authorization ?? '', 'idempotency-key': `${run}-big` };
  const oversized = (async () => {
    while (oversizedOn.sending) {
      const statuses = await Promise.all([
        sendOversized(url, auth, 10 * 1024 * 1024, true),
        sendOversized(url, auth, 1024 * 1024, false),
      ]);
      for (const status of statuses) refused.set(status, (refused.get(status) ?? 0) + 1);
      await sleep(100);
    }
  })();
  return {
    stop: () => {
      oversizedOn.sending = false;
      void oversized;
      slowloris.stop();
      streams.destroy();
    },
    summary: () =>
      `${sseClients} never-reading streams, ${slowlorisCount} Slowloris (${slowloris.closed()} closed by the server), oversized bodies answered ${JSON.stringify(Object.fromEntries(refused))}`,
  };
}

const results: CaseResult[] = [];
let abuseSummary = '';
try {
  const server = await startServer(
    process.execPath,
    [
      ...SERVE_FOR_LOAD,
      '--max-event-loop-delay',
      '10m',
      '--sse-max-age',
      '10s',
      '--sse-drop-after',
      '2s',
      // The never-reading streams all come from 127.0.0.1: lift the per-address share so the
      // bench keeps measuring what 200 of them cost, as before the share existed.
      '--sse-max-per-ip',
      String(sseClients + 10),
    ],
    env,
  );
  try {
    const measure = async (name: string) => {
      const before = cpuSeconds(server.child.pid ?? 0);
      const result = await load(name, {
        url: server.url,
        connections,
        durationSeconds: duration,
        request: buyRequest,
      });
      const cpu = cpuSeconds(server.child.pid ?? 0) - before;
      results.push({
        ...result,
        serverCpuUsPerRequest: Math.round((cpu * 1e6) / Math.max(1, result.total)),
      });
    };
    log(
      `warming up ${warmup} s, then measuring ${duration} s per case at ${connections} connections`,
    );
    await load('warmup', {
      url: server.url,
      connections,
      durationSeconds: warmup,
      request: buyRequest,
    });
    await measure('a: buys alone');
    log('a: done; starting the abuse');
    const abuse = await startAbuse(server.url);
    try {
      await sleep(1_000);
      await measure('b: buys under abuse');
      abuseSummary = abuse.summary();
    } finally {
      abuse.stop();
    }
  } finally {
    await server.stop();
  }
} finally {
  await deleteMatching(redis, `${keyPrefix}:*`);
  redis.disconnect();
  await pool.end();
  await dropDatabaseIfOurs(databaseUrl, 'fsale_bench_');
}

const [alone, abused] = results as [CaseResult, CaseResult];
const errors = (r: CaseResult) =>
  Object.entries(r.statuses)
    .filter(([status]) => status !== '202')
    .reduce((sum, [, count]) => sum + count, 0) +
  r.errors +
  r.timeouts;
const summary = {
  benchmark: 'abuse',
  machine: await machine(redisUrl, scope.serverUrl),
  connections,
  durationSeconds: duration,
  abuse: abuseSummary,
  rows: results.map((r) => ({
    case: r.name,
    requestsPerSecond: r.requestsPerSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    errors: errors(r),
    serverCpuUsPerRequest: r.serverCpuUsPerRequest,
  })),
  ratioP99: +(abused.p99Ms / Math.max(1, alone.p99Ms)).toFixed(2),
  target: { ratioP99: 3 },
};
if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    ['case', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU µs/req'],
    summary.rows.map((r) => [
      r.case,
      r.requestsPerSecond,
      r.p50Ms,
      r.p99Ms,
      r.errors,
      r.serverCpuUsPerRequest,
    ]),
  );
  console.log(`abuse: ${abuseSummary}`);
  console.log(`p99 b/a = ${summary.ratioP99} (target ≤ 3)`);
  console.log(
    `${summary.machine.cores} cores, Node ${summary.machine.node}, Redis ${summary.machine.redis}, PostgreSQL ${summary.machine.postgres}, ${summary.machine.date}`,
  );
}
