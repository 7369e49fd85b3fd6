// bench/buy.ts — the buy path against a bare Fastify route, measured side by side in one run.
//   (a) a bare Fastify POST route answering 202 (the ceiling of any Fastify route here)
//   (b) POST /order/buy, a unique user and Idempotency-Key per request, stock never runs out
//   (c) POST /order/buy on a sold-out product (the in-process fast path)
//   (b0, c0) the same with Redis auto-pipelining off, to show what it buys
// Each server runs in its own process; autocannon drives it from this one. Usage:
//   npm run bench:buy [-- --duration 10 --connections 50 --json]
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  benchScope,
  buyRequests,
  cpuSeconds,
  dropDatabaseIfOurs,
  load,
  machine,
  printTable,
  redisCpuSeconds,
  startServer,
  type BuyRequest,
  type LoadResult,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const connections = Number(args.connections);
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));

const scope = benchScope();
const { redisUrl, databaseUrl, keyPrefix, env } = scope;

await migrate(databaseUrl);
const pool = await connectPostgres(databaseUrl);
const redis = await connectRedis(redisUrl);
const ctx = { pool, redis, keyPrefix };
await seedProduct(ctx, { productId: 'plenty', stock: 50_000_000, perUserLimit: 1_000_000 });
await seedProduct(ctx, { productId: 'gone', stock: 0 });
const buyRequest = buyRequests(scope, 300_000, 'bu');

const root = fileURLToPath(new URL('..', import.meta.url));
const serve = [
  `${root}bin/run.js`,
  'serve',
  '--port',
  '0',
  '--rate-limit',
  '0',
  '--max-queue',
  '100000000',
];
interface CaseResult extends LoadResult {
  /** CPU time per request of the server, Redis and the load generator (µs). */
  cpuUsPerRequest: { server: number; redis: number; generator: number };
  /** Cores those three kept busy on average: near the machine's count means CPU-bound. */
  coresBusy: number;
}
const results: CaseResult[] = [];
try {
  type Case = [string, string, string[], BuyRequest];
  const cases: Case[] = [
    [
      'a: bare Fastify route',
      process.execPath,
      ['--import', 'tsx', `${root}bench/servers/bare.ts`],
      buyRequest('plenty'),
    ],
    ['b: buy (accepted)', process.execPath, serve, buyRequest('plenty')],
    ['c: buy (sold out)', process.execPath, serve, buyRequest('gone')],
    [
      'b0: buy (accepted), no auto-pipelining',
      process.execPath,
      [...serve, '--no-auto-pipelining'],
      buyRequest('plenty'),
    ],
    [
      'c0: buy (sold out), no auto-pipelining',
      process.execPath,
      [...serve, '--no-auto-pipelining'],
      buyRequest('gone'),
    ],
  ];
  for (const [name, command, commandArgs, request] of cases) {
    const server = await startServer(command, commandArgs, env);
    try {
      log(`${name}: warming up ${warmup} s, measuring ${duration} s at ${connections} connections`);
      await load(name, { url: server.url, connections, durationSeconds: warmup, request });
      // Where the machine's CPU went during the measured run: the server, Redis, and this
      // process (autocannon). On 2 cores a buy needs a third busy process (Redis).
      const before = {
        server: cpuSeconds(server.child.pid ?? 0),
        redis: await redisCpuSeconds(redis),
        generator: process.cpuUsage(),
      };
      const result = await load(name, {
        url: server.url,
        connections,
        durationSeconds: duration,
        request,
      });
      const perRequest = (seconds: number) =>
        Math.round((seconds * 1e6) / Math.max(1, result.total));
      const generator = process.cpuUsage(before.generator);
      const serverCpu = cpuSeconds(server.child.pid ?? 0) - before.server;
      const redisCpu = (await redisCpuSeconds(redis)) - before.redis;
      const generatorCpu = (generator.user + generator.system) / 1e6;
      results.push({
        ...result,
        cpuUsPerRequest: {
          server: perRequest(serverCpu),
          redis: perRequest(redisCpu),
          generator: perRequest(generatorCpu),
        },
        coresBusy: +((serverCpu + redisCpu + generatorCpu) / duration).toFixed(2),
      });
    } finally {
      await server.stop();
    }
  }
} finally {
  await deleteMatching(redis, `${keyPrefix}:*`);
  redis.disconnect();
  await pool.end();
  await dropDatabaseIfOurs(databaseUrl, 'fsale_bench_');
}

const [bare, accepted, soldOut, acceptedPlain, soldOutPlain] = results as [
  CaseResult,
  CaseResult,
  CaseResult,
  CaseResult,
  CaseResult,
];
const unexpected = (r: CaseResult, allowed: string[]) =>
  Object.entries(r.statuses)
    .filter(([status]) => !allowed.includes(status))
    .reduce((sum, [, count]) => sum + count, 0) +
  r.errors +
  r.timeouts;
const summary = {
  benchmark: 'buy',
  machine: await machine(redisUrl, scope.serverUrl),
  connections,
  durationSeconds: duration,
  results,
  ratios: {
    acceptedToBare: +(accepted.requestsPerSecond / bare.requestsPerSecond).toFixed(3),
    soldOutToBare: +(soldOut.requestsPerSecond / bare.requestsPerSecond).toFixed(3),
    acceptedToBareWithoutAutoPipelining: +(
      acceptedPlain.requestsPerSecond / bare.requestsPerSecond
    ).toFixed(3),
    soldOutToBareWithoutAutoPipelining: +(
      soldOutPlain.requestsPerSecond / bare.requestsPerSecond
    ).toFixed(3),
  },
  targets: { acceptedToBare: 0.45, acceptedToBareStretch: 0.6, soldOutToBare: 0.8 },
  unexpectedResponses: {
    accepted: unexpected(accepted, ['202']),
    soldOut: unexpected(soldOut, ['409']),
  },
};
if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    [
      'case',
      'req/s',
      'p50 ms',
      'p99 ms',
      'requests',
      'statuses',
      'ratio to a',
      'CPU µs/req server+redis+gen',
      'cores busy',
    ],
    results.map((r) => [
      r.name,
      r.requestsPerSecond,
      r.p50Ms,
      r.p99Ms,
      r.total,
      Object.entries(r.statuses)
        .map(([s, c]) => `${s}:${c}`)
        .join(' ') + (r.errors > 0 ? ` err:${r.errors}` : ''),
      (r.requestsPerSecond / bare.requestsPerSecond).toFixed(2),
      `${r.cpuUsPerRequest.server}+${r.cpuUsPerRequest.redis}+${r.cpuUsPerRequest.generator}`,
      r.coresBusy,
    ]),
  );
  console.log(
    `b/a = ${summary.ratios.acceptedToBare} (target >= 0.45, stretch 0.6); c/a = ${summary.ratios.soldOutToBare} (target >= 0.8); ` +
      `unexpected responses: ${summary.unexpectedResponses.accepted} + ${summary.unexpectedResponses.soldOut}`,
  );
  console.log(
    `${summary.machine.cores} cores, Node ${summary.machine.node}, Redis ${summary.machine.redis}, PostgreSQL ${summary.machine.postgres}, ${summary.machine.date}`,
  );
}
