// bench/buy.ts — the buy path against a bare Fastify route, measured side by side in one run.
//   (a) a bare Fastify POST route answering 202 (the ceiling of any Fastify route here)
//   (b) POST /order/buy, a unique user and Idempotency-Key per request, stock never runs out
//   (c) POST /order/buy on a sold-out product (the in-process fast path)
//   (b0, c0) the same with the buy path's write batching off (--no-auto-pipelining), to show
//   what it buys
// Each server runs in its own process (with its own key prefix, so no server hears another's
// stock publishes); fsale flood's engine drives it from this one, paced above capacity with at
// most --connections requests out (--driver autocannon: the closed loop it used first; --driver
// wrk: the C closed loop, one thread, much lighter than either, when installed). The
// measured time of each case is split into rounds taken in turn (a b c b0 c0, a b c b0 c0, ...): this VM's speed drifts by
// tens of percent within minutes, and interleaving spreads a slow spell over every case
// instead of charging it to one. Usage:
//   npm run bench:buy [-- --duration 12 --rounds 3 --connections 50 --driver flood --json]
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mintTokens } from '../src/auth/tokens.js';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis, deleteMatching } from '../src/redis/client.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  benchScope,
  buyRequests,
  cpuSeconds,
  dropDatabaseIfOurs,
  floodLoad,
  load,
  machine,
  mergeRounds,
  printTable,
  redisCpuSeconds,
  SERVE_FOR_LOAD,
  startServer,
  type BuyRequest,
  type ChildServer,
  type LoadResult,
  wrkLoad,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    // flood: fsale flood's engine paced above capacity (the default: it is the project's own
    // generator and records by outcome); autocannon: the closed loop this benchmark used first.
    driver: { type: 'string', default: 'flood' },
    'flood-rate': { type: 'string', default: '60000' },
    json: { type: 'boolean', default: false },
  },
});
const duration = Number(args.duration);
const rounds = Number(args.rounds);
if (!(duration >= 10) || !Number.isInteger(rounds) || rounds < 1) {
  throw new Error('--duration must be >= 10 (seconds per case) and --rounds a positive integer');
}
const warmup = Number(args.warmup);
if (args.driver !== 'flood' && args.driver !== 'autocannon' && args.driver !== 'wrk')
  throw new Error('--driver must be flood, autocannon or wrk');
const floodRate = Number(args['flood-rate']);
const connections = Number(args.connections);
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));

const scope = benchScope();
const { redisUrl, databaseUrl, keyPrefix, env } = scope;

await migrate(databaseUrl);
const pool = await connectPostgres(databaseUrl);
const redis = await connectRedis(redisUrl);
const buyRequest = buyRequests(scope, 300_000, 'bu');
/** wrk sends as one user (the products allow a million units each); every key is new. */
const wrkToken = mintTokens(scope.secret, ['bu-wrk'], 3600)[0] ?? '';
/** A key prefix of its own for one case, seeded with both products. */
async function casePrefix(tag: string): Promise<string> {
  const prefix = `${keyPrefix}_${tag}`;
  const ctx = { pool, redis, keyPrefix: prefix };
  await seedProduct(ctx, {
    productId: 'plenty',
    stock: 50_000_000,
    perUserLimit: 1_000_000,
    reset: true,
  });
  await seedProduct(ctx, { productId: 'gone', stock: 0, reset: true });
  return prefix;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const serve = [...SERVE_FOR_LOAD];
/** One measured slice of one case. */
interface Round {
  result: LoadResult;
  /** CPU seconds used during the slice. */
  cpu: { server: number; redis: number; generator: number };
}
interface CaseResult extends LoadResult {
  /** CPU time per request of the server, Redis and the load generator (µs). */
  cpuUsPerRequest: { server: number; redis: number; generator: number };
  /** Cores those three kept busy on average: near the machine's count means CPU-bound. */
  coresBusy: number;
}
const results: CaseResult[] = [];
const servers: ChildServer[] = [];
try {
  const cases: { name: string; args: string[]; tag: string; product: string }[] = [
    {
      name: 'a: bare Fastify route',
      args: ['--import', 'tsx', `${root}bench/servers/bare.ts`],
      tag: 'a',
      product: 'plenty',
    },
    { name: 'b: buy (accepted)', args: serve, tag: 'b', product: 'plenty' },
    { name: 'c: buy (sold out)', args: serve, tag: 'c', product: 'gone' },
    {
      name: 'b0: buy (accepted), no auto-pipelining',
      args: [...serve, '--no-auto-pipelining'],
      tag: 'b0',
      product: 'plenty',
    },
    {
      name: 'c0: buy (sold out), no auto-pipelining',
      args: [...serve, '--no-auto-pipelining'],
      tag: 'c0',
      product: 'gone',
    },
  ];
  const running: {
    name: string;
    server: ChildServer;
    request: BuyRequest;
    product: string;
    rounds: Round[];
  }[] = [];
  for (const { name, args: serverArgs, tag, product } of cases) {
    const prefix = await casePrefix(tag);
    const server = await startServer(process.execPath, serverArgs, {
      ...env,
      FSALE_KEY_PREFIX: prefix,
    });
    servers.push(server);
    const request = buyRequest(product);
    log(`${name}: warming up ${warmup} s`);
    await load(name, { url: server.url, connections, durationSeconds: warmup, request });
    running.push({ name, server, request, product, rounds: [] });
  }
  const slice = duration / rounds;
  for (let round = 1; round <= rounds; round += 1) {
    for (const { name, server, request, product, rounds: done } of running) {
      log(`${name}: round ${round}/${rounds}, ${slice} s at ${connections} connections`);
      // Where the machine's CPU went: the server, Redis, and this process (autocannon). On
      // 2 cores a buy needs a third busy process (Redis).
      const before = {
        server: cpuSeconds(server.child.pid ?? 0),
        redis: await redisCpuSeconds(redis),
        generator: process.cpuUsage(),
      };
      let wrkCpu: number | undefined;
      const result =
        args.driver === 'wrk'
          ? await wrkLoad(name, {
              url: server.url,
              path: '/order/buy',
              body: `{"productId":"${product}","qty":1}`,
              connections,
              durationSeconds: slice,
              keyPrefix: `${scope.run}${name.split(':')[0] ?? ''}${round}-`,
              token: wrkToken,
            }).then((r) => {
              wrkCpu = r.cpuSeconds;
              return r;
            })
          : args.driver === 'flood'
            ? await floodLoad(name, {
                url: server.url,
                productId: product,
                connections,
                durationSeconds: slice,
                rate: floodRate,
                secret: scope.secret,
                runTag: `${scope.run}${name.split(':')[0] ?? ''}${round}`,
              })
            : await load(name, { url: server.url, connections, durationSeconds: slice, request });
      const generator = process.cpuUsage(before.generator);
      done.push({
        result,
        cpu: {
          server: cpuSeconds(server.child.pid ?? 0) - before.server,
          redis: (await redisCpuSeconds(redis)) - before.redis,
          // wrk is a process of its own: its CPU is what `times` reported.
          generator: wrkCpu ?? (generator.user + generator.system) / 1e6,
        },
      });
    }
  }
  for (const { rounds: done } of running) {
    const result = mergeRounds(
      done.map((r) => r.result),
      duration,
    );
    const cpu = (key: keyof Round['cpu']) => done.reduce((sum, r) => sum + r.cpu[key], 0);
    const perRequest = (seconds: number) => Math.round((seconds * 1e6) / Math.max(1, result.total));
    results.push({
      ...result,
      cpuUsPerRequest: {
        server: perRequest(cpu('server')),
        redis: perRequest(cpu('redis')),
        generator: perRequest(cpu('generator')),
      },
      coresBusy: +((cpu('server') + cpu('redis') + cpu('generator')) / duration).toFixed(2),
    });
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  await deleteMatching(redis, `${keyPrefix}_*`);
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
  driver: args.driver,
  machine: await machine(redisUrl, scope.serverUrl),
  connections,
  durationSeconds: duration,
  rounds,
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
