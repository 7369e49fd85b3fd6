// bench/capacity.ts — every per-component cost of docs/capacity.md, measured in one run on this
// machine, then the capacity model (src/load/capacity.ts) for a sale sized by the flags
// (default: 1,000,000 buyers in 60 s for 100,000 units, half of them in the first 5 s):
//   1. buys: one `fsale serve` on a private redis-server, driven by fsale flood's engine paced
//      above capacity; the server's and Redis's CPU µs per accepted buy, then per sold-out
//      answer;
//   2. orders: one `fsale work orders --concurrency 1` (one PostgreSQL connection committing)
//      draining a pre-filled stream, as bench/drain.ts does: rows/s, worker and PG backend CPU
//      per row;
//   3. payments: one `fsale work payments` at its default concurrency charging those orders
//      through the mock gateway with no failures and no latency (bench/servers/gateway.ts):
//      charges/s, worker and PG backend CPU per charge;
//   4. SSE: N stock-stream clients on one `fsale serve`, a change published every 10 ms (a short
//      bench/sse.ts): events delivered/s and the server's CPU µs per event, memory per client;
//   5. sharded buys: the flood of stage 1 on a product split one stock shard per master
//      (`seed --stock-shards 3`) of a local Redis Cluster of 3 masters + 3 replicas: every
//      master's CPU µs per buy, summed (bench/hot-product.ts compares it with K = 1).
// Everything runs on 127.0.0.1; every process it starts is stopped, its database dropped, its
// Redis server stopped and its directory removed. Usage:
//   npm run bench:capacity [-- --buy-seconds 12 --orders 60000 --sse-clients 2000 --json]
//                          [--buyers 1000000 --units 100000 --peak-share 0.5 --peak-seconds 5
//                           --utilisation 0.7 ...]
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { LATENCY_MEDIAN_MS, LATENCY_SIGMA } from '../src/gateway/behaviour.js';
import { startRedisServer } from '../src/infra/local-services.js';
import { planCapacity, type MeasuredCosts, type SaleScenario } from '../src/load/capacity.js';
import { connectRedis } from '../src/redis/client.js';
import { productKeys } from '../src/redis/keys.js';
import { seedProduct } from '../src/sale/seed.js';
import { MAX_STOCK_STREAMS } from '../src/server/sse-budget.js';
import { DEFAULT_SSE } from '../src/server/sse-hub.js';
import { PAYMENT_WORKER_DEFAULTS } from '../src/workers/payments.js';
import {
  benchScope,
  cpuSeconds,
  dropDatabaseIfOurs,
  floodLoad,
  machine,
  openSseClients,
  prefillOrders,
  markdownTable,
  mastersCpuPerBuy,
  cpuSpent,
  printTable,
  publishStockChanges,
  redisCpuSeconds,
  SERVE_FOR_LOAD,
  rewriteBlock,
  rssBytes,
  runWorkerUntil,
  startBenchCluster,
  startServer,
  type ChildServer,
  type LoadResult,
  type WorkerLine,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    // What is measured, and for how long.
    'buy-seconds': { type: 'string', default: '12' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    'flood-rate': { type: 'string', default: '60000' },
    orders: { type: 'string', default: '60000' },
    'payment-concurrency': {
      type: 'string',
      default: String(PAYMENT_WORKER_DEFAULTS.concurrency),
    },
    'sse-clients': { type: 'string', default: '2000' },
    'sse-processes': { type: 'string', default: '2' },
    'sse-seconds': { type: 'string', default: '8' },
    'every-ms': { type: 'string', default: '10' },
    // The sale the model sizes.
    buyers: { type: 'string', default: '1000000' },
    'sale-seconds': { type: 'string', default: '60' },
    units: { type: 'string', default: '100000' },
    'peak-share': { type: 'string', default: '0.5' },
    'peak-seconds': { type: 'string', default: '5' },
    utilisation: { type: 'string', default: '0.7' },
    'persist-within': { type: 'string', default: '60' },
    'charge-within': { type: 'string', default: '300' },
    // The mock gateway's mean latency at speed 1 (log-normal: median x e^(sigma^2 / 2)).
    'gateway-latency-ms': {
      type: 'string',
      default: String(Math.round(LATENCY_MEDIAN_MS * Math.exp(LATENCY_SIGMA ** 2 / 2))),
    },
    watchers: { type: 'string', default: '1000000' },
    // The SSE hub's coalescing (`serve --sse-interval`): one event per client per interval.
    'sse-interval-ms': { type: 'string', default: String(DEFAULT_SSE.intervalMs) },
    // Re-plan from a saved --json run instead of measuring.
    costs: { type: 'string' },
    // Rewrite the tables of docs/capacity.md from this run.
    'write-doc': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const number = (name: keyof typeof args, min: number): number => {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`--${name} must be a number >= ${min}`);
  return value;
};
const buySeconds = number('buy-seconds', 4);
const warmup = number('warmup', 0);
const connections = number('connections', 1);
const floodRate = number('flood-rate', 1);
const orders = number('orders', 1_000);
const paymentConcurrency = number('payment-concurrency', 1);
const sseClients = number('sse-clients', 1);
const sseProcesses = number('sse-processes', 1);
const sseSeconds = number('sse-seconds', 2);
const everyMs = number('every-ms', 1);
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));

const root = fileURLToPath(new URL('..', import.meta.url));
const serve = [...SERVE_FOR_LOAD];
const perUs = (seconds: number, count: number) =>
  +((seconds * 1e6) / Math.max(1, count)).toFixed(1);

/**
 * Starts a Redis server and a database of this run's own, measures every stage on them, and
 * removes both whatever happens.
 */
async function measureOnThisMachine() {
  const dataDir = await mkdtemp(join(tmpdir(), 'fsale-bench-capacity-'));
  // A Redis server of our own: its CPU is this run's alone (the shared one serves other work).
  const redisServer = await startRedisServer({ dataDir });
  const scope = benchScope('cap', { redisUrl: redisServer.url });
  await migrate(scope.databaseUrl);
  const pool = await connectPostgres(scope.databaseUrl);
  const redis = await connectRedis(redisServer.url);
  const ctx = { pool, redis, keyPrefix: scope.keyPrefix };
  const servers: ChildServer[] = [];
  /** Stops a server started here and forgets it. */
  async function stopServer(server: ChildServer): Promise<void> {
    servers.splice(servers.indexOf(server), 1);
    await server.stop();
  }

  /** CPU seconds of the PostgreSQL backends serving `application` on this run's database. */
  async function backendCpuSeconds(application: string): Promise<number> {
    const client = new pg.Client({ connectionString: scope.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
        [application],
      );
      return rows.reduce((sum, row) => sum + cpuSeconds(row.pid), 0);
    } finally {
      await client.end();
    }
  }

  interface BuyCase {
    result: LoadResult;
    apiCpuUs: number;
    redisCpuUs: number;
    generatorCpuUs: number;
  }

  /** One flood of `seconds` against `productId`: answers/s and the CPU per answer. */
  async function measureBuys(
    server: ChildServer,
    name: string,
    productId: string,
    seconds: number,
  ): Promise<BuyCase> {
    const pid = server.child.pid ?? 0;
    const before = {
      api: cpuSeconds(pid),
      redis: await redisCpuSeconds(redis),
      generator: process.cpuUsage(),
    };
    const result = await floodLoad(name, {
      url: server.url,
      productId,
      connections,
      durationSeconds: seconds,
      rate: floodRate,
      secret: scope.secret,
      runTag: `${scope.run}${productId}${seconds}`,
    });
    const generator = process.cpuUsage(before.generator);
    return {
      result,
      apiCpuUs: perUs(cpuSeconds(pid) - before.api, result.total),
      redisCpuUs: perUs((await redisCpuSeconds(redis)) - before.redis, result.total),
      generatorCpuUs: perUs((generator.user + generator.system) / 1e6, result.total),
    };
  }

  /** The worker's pace between two of its status lines: units/s and CPU µs per unit. */
  function pace(from: WorkerLine, to: WorkerLine, units: number) {
    const seconds = (to.at - from.at) / 1000;
    return {
      seconds: +seconds.toFixed(3),
      perSecond: Math.round(units / seconds),
      workerCpuUs: perUs(to.cpuSeconds - from.cpuSeconds, units),
    };
  }

  /** Every stage in turn, on what this run started; returns the figures. */
  async function measure() {
    // 1. Buys: accepted, then sold out, on one API process and one Redis node. Under a key
    // prefix of their own, so the order worker below finds only the orders it is given.
    const buys = { ...ctx, keyPrefix: `${scope.keyPrefix}_buys` };
    await seedProduct(buys, {
      productId: 'plenty',
      stock: 50_000_000,
      perUserLimit: 1_000_000,
      reset: true,
    });
    await seedProduct(buys, { productId: 'gone', stock: 0, reset: true });
    const api = await startServer(process.execPath, serve, {
      ...scope.env,
      FSALE_KEY_PREFIX: buys.keyPrefix,
    });
    servers.push(api);
    log(`buys: warming up ${warmup} s`);
    if (warmup > 0) {
      await measureBuys(api, 'warm-up', 'plenty', warmup);
      await measureBuys(api, 'warm-up', 'gone', Math.max(1, warmup / 3));
    }
    log(`buys: accepted for ${buySeconds} s, then sold out for ${buySeconds / 2} s`);
    const accepted = await measureBuys(api, 'buy (accepted)', 'plenty', buySeconds);
    const soldOut = await measureBuys(api, 'buy (sold out)', 'gone', buySeconds / 2);
    await stopServer(api);

    // 2. Orders: one worker, one committing connection, a pre-filled stream.
    log(`orders: persisting ${orders} orders with one worker, --concurrency 1`);
    await seedProduct(ctx, { productId: 'drain', stock: orders, reset: true });
    await prefillOrders(redis, scope.keyPrefix, 'drain', orders);
    let orderBackends = 0;
    const drained = await runWorkerUntil(
      ['work', 'orders', '--concurrency', '1'],
      scope.env,
      (line) => line.event === 'status' && Number(line.persisted ?? 0) >= orders,
      {
        timeoutMs: 300_000,
        atReached: async () => {
          orderBackends = await backendCpuSeconds('fsale work orders');
        },
      },
    );
    const started = drained.lines.find((l) => l.line.event === 'started');
    if (started === undefined) throw new Error('the order worker printed no started line');
    const persisting = pace(started, drained.reached, orders);

    // 3. Payments: the same orders, charged through a gateway that answers at once.
    log(`payments: charging ${orders} orders, --concurrency ${paymentConcurrency}`);
    const gateway = await startServer(
      process.execPath,
      ['--import', 'tsx', `${root}bench/servers/gateway.ts`],
      scope.env,
    );
    servers.push(gateway);
    const settled = (line: WorkerLine['line']) =>
      Number(line.paid ?? 0) + Number(line.declined ?? 0) + Number(line.unknown ?? 0);
    const redisBeforePayments = await redisCpuSeconds(redis);
    const gatewayBefore = cpuSeconds(gateway.child.pid ?? 0);
    let paymentBackends = 0;
    const charged = await runWorkerUntil(
      [
        'work',
        'payments',
        '--gateway-url',
        gateway.url,
        '--concurrency',
        String(paymentConcurrency),
      ],
      scope.env,
      (line) => line.event === 'status' && settled(line) >= orders,
      {
        timeoutMs: 300_000,
        atReached: async () => {
          paymentBackends = await backendCpuSeconds('fsale work payments');
        },
      },
    );
    // From the first status line that shows a settled charge: start-up is not the worker's pace.
    const firstPaid = charged.lines.find((l) => l.line.event === 'status' && settled(l.line) > 0);
    if (firstPaid === undefined) throw new Error('the payment worker settled nothing');
    const charging = pace(
      firstPaid,
      charged.reached,
      settled(charged.reached.line) - settled(firstPaid.line),
    );
    const paid = Number(charged.reached.line.paid ?? 0);
    const redisPaymentsUs = perUs((await redisCpuSeconds(redis)) - redisBeforePayments, orders);
    const gatewayUs = perUs(cpuSeconds(gateway.child.pid ?? 0) - gatewayBefore, orders);
    await stopServer(gateway);

    // 4. SSE: stock-stream clients on one API process, a change every `everyMs`.
    log(`sse: ${sseClients} clients in ${sseProcesses} processes, a change every ${everyMs} ms`);
    await seedProduct(ctx, { productId: 'live', stock: 1_000_000, reset: true });
    const streams = String(sseClients + 100);
    const sseApi = await startServer(
      process.execPath,
      [...serve, '--sse-max-stock-streams', streams, '--sse-max-per-ip', streams],
      scope.env,
    );
    servers.push(sseApi);
    const ssePid = sseApi.child.pid ?? 0;
    await new Promise((r) => setTimeout(r, 500));
    const rssBefore = rssBytes(ssePid);
    const clients = await openSseClients(
      `${sseApi.url}/stock/live/stream`,
      sseClients,
      sseProcesses,
    );
    const sse = await (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const rssAfter = rssBytes(ssePid);
      const cpuBefore = cpuSeconds(ssePid);
      const published = await publishStockChanges(
        redis,
        productKeys(scope.keyPrefix, 'live').stockChannel,
        1_000_000,
        sseSeconds * 1000,
        everyMs,
      );
      await new Promise((r) => setTimeout(r, 1000)); // the last coalesced events
      const cpu = cpuSeconds(ssePid) - cpuBefore;
      const reports = await clients.report(published);
      const events = reports.reduce((sum, r) => sum + r.events, 0);
      return {
        clients: reports.reduce((sum, r) => sum + r.connected, 0),
        changes: published.length,
        eventsPerSecond: Math.round(events / sseSeconds),
        apiCpuUsPerEvent: perUs(cpu, events),
        apiCoresBusy: +(cpu / (sseSeconds + 1)).toFixed(2),
        memoryKiBPerClient: +((rssAfter - rssBefore) / sseClients / 1024).toFixed(1),
      };
    })().finally(() => clients.close());
    await stopServer(sseApi);

    // 5. Sharded buys, on a cluster of this run's own, under a key prefix of their own.
    log(`sharded buys: a local Redis Cluster, one stock shard per master, ${buySeconds} s`);
    const cluster = await startBenchCluster(join(dataDir, 'cluster'));
    const shardedBuys = await (async () => {
      const clusterRedis = await connectRedis(cluster.url);
      try {
        await seedProduct(
          { pool, redis: clusterRedis, keyPrefix: `${scope.keyPrefix}_sharded` },
          {
            productId: 'plenty',
            stock: 50_000_000,
            perUserLimit: 1_000_000,
            stockShards: cluster.masters.length,
            reset: true,
          },
        );
      } finally {
        clusterRedis.disconnect();
      }
      const clusterApi = await startServer(process.execPath, serve, {
        ...scope.env,
        REDIS_URL: cluster.url,
        FSALE_KEY_PREFIX: `${scope.keyPrefix}_sharded`,
      });
      servers.push(clusterApi);
      if (warmup > 0) await measureBuys(clusterApi, 'warm-up', 'plenty', warmup);
      const before = await cluster.mastersCpu();
      const buysThere = await measureBuys(clusterApi, 'buy (sharded)', 'plenty', buySeconds);
      const perBuy = mastersCpuPerBuy(
        cluster.masters,
        cpuSpent(before, await cluster.mastersCpu()),
        buysThere.result.total,
      );
      await stopServer(clusterApi);
      return {
        masters: cluster.masters.length,
        stockShards: cluster.masters.length,
        buysPerSecond: buysThere.result.requestsPerSecond,
        statuses: buysThere.result.statuses,
        apiCpuUsPerBuy: buysThere.apiCpuUs,
        redisCpuUsPerBuyByMaster: perBuy.byMaster,
        redisCpuUsPerBuy: perBuy.total,
      };
    })().finally(() => cluster.stop());

    return {
      buys: {
        durationSeconds: buySeconds,
        connections,
        accepted: {
          buysPerSecond: accepted.result.requestsPerSecond,
          answered: accepted.result.total,
          statuses: accepted.result.statuses,
          apiCpuUsPerBuy: accepted.apiCpuUs,
          redisCpuUsPerBuy: accepted.redisCpuUs,
          generatorCpuUsPerBuy: accepted.generatorCpuUs,
        },
        soldOut: {
          answersPerSecond: soldOut.result.requestsPerSecond,
          answered: soldOut.result.total,
          statuses: soldOut.result.statuses,
          apiCpuUsPerAnswer: soldOut.apiCpuUs,
          redisCpuUsPerAnswer: soldOut.redisCpuUs,
          generatorCpuUsPerAnswer: soldOut.generatorCpuUs,
        },
      },
      orders: {
        orders,
        concurrency: 1,
        drainSeconds: persisting.seconds,
        rowsPerSecond: persisting.perSecond,
        workerCpuUsPerRow: persisting.workerCpuUs,
        pgCpuUsPerRow: perUs(orderBackends, orders),
      },
      payments: {
        orders,
        concurrency: paymentConcurrency,
        paid,
        seconds: charging.seconds,
        chargesPerSecond: charging.perSecond,
        workerCpuUsPerCharge: charging.workerCpuUs,
        pgCpuUsPerCharge: perUs(paymentBackends, orders),
        redisCpuUsPerCharge: redisPaymentsUs,
        gatewayCpuUsPerCharge: gatewayUs,
      },
      sse: { ...sse, everyMs, durationSeconds: sseSeconds },
      shardedBuys,
    };
  }

  const [measured, facts] = await Promise.all([
    measure(),
    machine(redisServer.url, scope.serverUrl),
  ]).finally(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    redis.disconnect();
    await pool.end();
    await dropDatabaseIfOurs(scope.databaseUrl, 'fsale_bench_');
    await redisServer.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { machine: facts, measured };
}

type Run = Awaited<ReturnType<typeof measureOnThisMachine>>;

/** A saved `--json` run: re-plan from its measured costs without measuring again. */
function savedRun(path: string): Run {
  const saved: unknown = JSON.parse(readFileSync(path, 'utf8'));
  const isRun = (value: unknown): value is Run =>
    typeof value === 'object' &&
    value !== null &&
    'benchmark' in value &&
    value.benchmark === 'capacity' &&
    'measured' in value &&
    typeof value.measured === 'object' &&
    value.measured !== null &&
    'shardedBuys' in value.measured &&
    'machine' in value;
  if (!isRun(saved))
    throw new Error(
      `${path} is no bench/capacity.ts --json output of this version (re-run it: stage 5, sharded buys, is missing)`,
    );
  return saved;
}

const { machine: machineFacts, measured } =
  args.costs === undefined ? await measureOnThisMachine() : savedRun(args.costs);

const costs: MeasuredCosts = {
  apiCpuUsPerBuy: measured.buys.accepted.apiCpuUsPerBuy,
  apiCpuUsPerSoldOut: measured.buys.soldOut.apiCpuUsPerAnswer,
  redisCpuUsPerBuy: measured.buys.accepted.redisCpuUsPerBuy,
  redisCpuUsPerShardedBuy: measured.shardedBuys.redisCpuUsPerBuy,
  redisCpuUsPerSoldOut: measured.buys.soldOut.redisCpuUsPerAnswer,
  orderRowsPerSecondPerConnection: measured.orders.rowsPerSecond,
  orderWorkerCpuUsPerRow: measured.orders.workerCpuUsPerRow,
  pgCpuUsPerRow: measured.orders.pgCpuUsPerRow,
  paymentChargesPerSecond: measured.payments.chargesPerSecond,
  paymentWorkerCpuUsPerCharge: measured.payments.workerCpuUsPerCharge,
  pgCpuUsPerCharge: measured.payments.pgCpuUsPerCharge,
  sseCpuUsPerEvent: measured.sse.apiCpuUsPerEvent,
  sseMemoryKiBPerClient: measured.sse.memoryKiBPerClient,
};
const scenario: SaleScenario = {
  buyers: number('buyers', 1),
  saleSeconds: number('sale-seconds', 1),
  units: number('units', 0),
  peak: { share: number('peak-share', 0), seconds: number('peak-seconds', 0) },
  utilisation: number('utilisation', 0),
  persistWithinSeconds: number('persist-within', 1),
  chargeWithinSeconds: number('charge-within', 1),
  gatewayLatencyMs: number('gateway-latency-ms', 0),
  paymentConcurrency,
  watchers: number('watchers', 0),
  sseIntervalMs: number('sse-interval-ms', 1),
  maxStockStreamsPerProcess: MAX_STOCK_STREAMS,
};
const plan = planCapacity(costs, scenario);
const summary = { benchmark: 'capacity', machine: machineFacts, measured, costs, scenario, plan };

const m = measured;
const inputs: [string[], (string | number)[][]] = [
  ['component', 'measured', 'CPU per unit'],
  [
    [
      'API + Redis, accepted buy',
      `${m.buys.accepted.buysPerSecond} buys/s (${JSON.stringify(m.buys.accepted.statuses)})`,
      `API ${m.buys.accepted.apiCpuUsPerBuy} µs, Redis ${m.buys.accepted.redisCpuUsPerBuy} µs, generator ${m.buys.accepted.generatorCpuUsPerBuy} µs`,
    ],
    [
      'API + Redis, sold out',
      `${m.buys.soldOut.answersPerSecond} answers/s (${JSON.stringify(m.buys.soldOut.statuses)})`,
      `API ${m.buys.soldOut.apiCpuUsPerAnswer} µs, Redis ${m.buys.soldOut.redisCpuUsPerAnswer} µs, generator ${m.buys.soldOut.generatorCpuUsPerAnswer} µs`,
    ],
    [
      'order worker, 1 PG connection',
      `${m.orders.rowsPerSecond} rows/s (${m.orders.orders} in ${m.orders.drainSeconds} s)`,
      `worker ${m.orders.workerCpuUsPerRow} µs, PG ${m.orders.pgCpuUsPerRow} µs`,
    ],
    [
      `payment worker, ${m.payments.concurrency} in flight`,
      `${m.payments.chargesPerSecond} charges/s (${m.payments.paid} paid)`,
      `worker ${m.payments.workerCpuUsPerCharge} µs, PG ${m.payments.pgCpuUsPerCharge} µs, Redis ${m.payments.redisCpuUsPerCharge} µs, gateway ${m.payments.gatewayCpuUsPerCharge} µs`,
    ],
    [
      `API + Redis Cluster, accepted buy, ${m.shardedBuys.stockShards} stock shards on ${m.shardedBuys.masters} masters`,
      `${m.shardedBuys.buysPerSecond} buys/s (${JSON.stringify(m.shardedBuys.statuses)})`,
      `API ${m.shardedBuys.apiCpuUsPerBuy} µs, Redis ${m.shardedBuys.redisCpuUsPerBuy} µs (${m.shardedBuys.redisCpuUsPerBuyByMaster.join(' + ')} by master)`,
    ],
    [
      `SSE, ${m.sse.clients} clients, a change every ${m.sse.everyMs} ms`,
      `${m.sse.eventsPerSecond} events/s, ${m.sse.memoryKiBPerClient} KiB/client`,
      `API ${m.sse.apiCpuUsPerEvent} µs/event (${m.sse.apiCoresBusy} cores busy)`,
    ],
  ],
];
const a = plan.arrivals;
const sale =
  `Sale: ${scenario.buyers} buyers in ${scenario.saleSeconds} s for ${scenario.units} units; ` +
  `${scenario.peak.share * 100} % of them in the first ${scenario.peak.seconds} s ` +
  `(average ${a.averagePerSecond}/s, peak ${a.peakPerSecond}/s, sold out after ${a.sellOutSeconds ?? 'never'} s); ` +
  `every core at most ${scenario.utilisation * 100} % busy.`;
const sizing: [string[], (string | number)[][]] = [
  ['component', 'needs', 'from'],
  [
    [
      'API processes (a core each)',
      plan.api.processes,
      `${a.peakBuysPerSecond} buys/s x ${costs.apiCpuUsPerBuy} µs = ${plan.api.coresAtPeak} cores`,
    ],
    [
      'Redis masters (stock shards K)',
      plan.redis.masters,
      `${a.peakBuysPerSecond} buys/s x ${plan.redis.cpuUsPerBuy} µs (${plan.redis.sharded ? 'a sharded buy on the cluster' : 'one Redis'}) = ${plan.redis.hotProductCores} cores on one product`,
    ],
    [
      'order workers / PG connections',
      `${plan.orders.workers} / ${plan.orders.pgConnections}`,
      `${plan.orders.rowsPerSecond} rows/s (all within ${scenario.persistWithinSeconds} s); ${plan.orders.pgConnectionsToKeepUp} to keep up with the peak`,
    ],
    [
      'payment workers',
      plan.payments.workers,
      `${plan.payments.chargesPerSecond} charges/s (within ${scenario.chargeWithinSeconds} s), ${plan.payments.perWorkerPerSecond}/s per worker (${plan.payments.boundBy}, ${scenario.gatewayLatencyMs} ms)`,
    ],
    [
      'SSE processes',
      plan.sse.processes,
      `${scenario.watchers} watchers, ${plan.sse.eventsPerSecond} events/s = ${plan.sse.cores} cores; bound by ${plan.sse.boundBy}; ${plan.sse.memoryGiB} GiB`,
    ],
    [
      'PostgreSQL cores / connections',
      `${plan.pg.cores} / ${plan.pg.connections}`,
      `orders ${plan.pg.coresForOrders} + payments ${plan.pg.coresForPayments} cores`,
    ],
    ['cores in all', plan.totalCores, 'each component sized for its own peak'],
  ],
];
const f = machineFacts;
const where = `${f.cores} cores (${f.cpu}), ${f.memoryGiB} GiB, Node ${f.node}, Redis ${f.redis}, PostgreSQL ${f.postgres}, ${f.date}`;

if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(...inputs);
  console.log(sale);
  printTable(...sizing);
  console.log(where);
}
if (args['write-doc']) {
  const doc = `${root}docs/capacity.md`;
  await rewriteBlock(
    doc,
    '<!-- capacity:inputs -->',
    '<!-- /capacity:inputs -->',
    `Measured ${where}.\n\n${markdownTable(...inputs)}`,
  );
  await rewriteBlock(
    doc,
    '<!-- capacity:plan -->',
    '<!-- /capacity:plan -->',
    `${sale}\n\n${markdownTable(...sizing)}`,
  );
  log('docs/capacity.md rewritten from this run');
}
