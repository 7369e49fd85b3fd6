// bench/hot-product.ts — one hot product on a Redis Cluster, its stock in one shard (K = 1, one
// slot, one master) vs split over three (K = 3, one shard per master: seed --stock-shards 3),
// same load, interleaved rounds in one run. For each: buys/s, p50/p99, and the Redis CPU each
// master spent per buy. A product's ceiling is set by its busiest master: 1e6 / (that master's
// CPU µs per buy of the product) buys/s, whatever the API can send. On 2 cores the API and
// the generator, not Redis, limit the measured buys/s; the per-master CPU is what shows what
// sharding buys on a machine with a core per master. Usage:
//   npm run bench:hot-product [-- --duration 12 --rounds 3 --connections 50 --json]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { connectRedis } from '../src/redis/client.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  benchScope,
  cpuSpent,
  dropDatabaseIfOurs,
  floodLoad,
  mastersCpuPerBuy,
  mergeRounds,
  printTable,
  roundsArgs,
  SERVE_FOR_LOAD,
  startBenchCluster,
  startServer,
  type LoadResult,
} from './lib.js';

const { duration, rounds, connections, floodRate, json, log } = roundsArgs();

const dataDir = await mkdtemp(join(tmpdir(), 'fsale-bench-hot-'));
const cluster = await startBenchCluster(dataDir);
const { masters } = cluster;
const scope = benchScope('hp');
await migrate(scope.databaseUrl);
const pool = await connectPostgres(scope.databaseUrl);

interface Case {
  name: string;
  productId: string;
  shards: number;
  rounds: { result: LoadResult; cpu: Map<number, number> }[];
}
const cases: Case[] = [
  { name: 'a: K = 1 (one slot)', productId: 'hot1', shards: 1, rounds: [] },
  { name: 'b: K = 3 (a shard per master)', productId: 'hot3', shards: 3, rounds: [] },
];
const server = await startServer(process.execPath, [...SERVE_FOR_LOAD], {
  ...scope.env,
  REDIS_URL: cluster.url,
});
try {
  const redis = await connectRedis(cluster.url);
  for (const c of cases) {
    await seedProduct(
      { pool, redis, keyPrefix: scope.keyPrefix },
      {
        productId: c.productId,
        stock: 50_000_000,
        perUserLimit: 1_000_000,
        stockShards: c.shards,
        reset: true,
      },
    );
  }
  redis.disconnect();
  const slice = duration / rounds;
  for (let round = 1; round <= rounds; round += 1) {
    for (const c of cases) {
      log(`${c.name}: round ${round}/${rounds}, ${slice} s`);
      const before = await cluster.mastersCpu();
      const result = await floodLoad(c.name, {
        url: server.url,
        productId: c.productId,
        connections,
        durationSeconds: slice,
        rate: floodRate,
        secret: scope.secret,
        runTag: `${scope.run}${c.shards}r${round}`,
      });
      c.rounds.push({ result, cpu: cpuSpent(before, await cluster.mastersCpu()) });
    }
  }
} finally {
  await server.stop();
  await pool.end();
  await dropDatabaseIfOurs(scope.databaseUrl, 'fsale_bench_');
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
}

const results = cases.map((c) => {
  const merged = mergeRounds(
    c.rounds.map((r) => r.result),
    duration,
  );
  const spent = new Map(
    masters.map((m) => [m.port, c.rounds.reduce((sum, r) => sum + (r.cpu.get(m.port) ?? 0), 0)]),
  );
  const perMaster = mastersCpuPerBuy(masters, spent, merged.total);
  const busiest = Math.max(...perMaster.byMaster);
  return {
    ...merged,
    shards: c.shards,
    redisCpuUsPerBuyByMaster: perMaster.byMaster,
    redisCpuUsPerBuy: perMaster.total,
    /** What this product could take if the busiest master had a core to itself. */
    ceilingBuysPerSecond: Math.round(1e6 / Math.max(0.1, busiest)),
  };
});
const [one, three] = results;
const summary = {
  benchmark: 'hot-product',
  durationSeconds: duration,
  rounds,
  connections,
  results,
  ratios: {
    buysPerSecond: +((three?.requestsPerSecond ?? 0) / (one?.requestsPerSecond ?? 1)).toFixed(3),
    ceiling: +((three?.ceilingBuysPerSecond ?? 0) / (one?.ceilingBuysPerSecond ?? 1)).toFixed(3),
  },
};
if (json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    [
      'case',
      'buys/s',
      'p50 ms',
      'p99 ms',
      'Redis CPU µs/buy per master',
      'ceiling buys/s',
      'statuses',
    ],
    results.map((r) => [
      r.name,
      r.requestsPerSecond,
      r.p50Ms,
      r.p99Ms,
      r.redisCpuUsPerBuyByMaster.join(' / '),
      r.ceilingBuysPerSecond,
      JSON.stringify(r.statuses),
    ]),
  );
  console.log(
    `K=3 / K=1: buys/s ${summary.ratios.buysPerSecond} (bounded by the API on this machine); product ceiling (busiest master) ${summary.ratios.ceiling}`,
  );
}
