// bench/cluster.ts — the buy path on one Redis node vs on a Redis Cluster, measured side by
// side in one run (interleaved rounds, as bench/buy.ts does):
//   (a) buy (accepted) on one private redis-server
//   (b) buy (accepted) on a private local cluster of 3 masters + 3 replicas
//   (c) the same on the cluster with `serve --durability replica` (WAIT 1 before each 202)
// For each: buys/s, p50/p99, and Redis CPU µs per buy (summed over every node of the cluster,
// replicas included: replication is part of the cost). One API process per case, driven by
// fsale flood's engine paced above capacity (so its p50/p99 are the queue's), then paced at
// PACED_RATE, below every case's capacity, for the latency a buy costs (what the WAIT of
// --durability replica adds). On 2 cores the cluster cannot be faster: six
// redis-servers share the cores with the API and the generator; what this shows is the cost
// per buy of routing, replication and the wait. Usage:
//   npm run bench:cluster [-- --duration 12 --rounds 3 --connections 50 --json]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { startRedisCluster } from '../src/infra/local-cluster.js';
import { startRedisServer, type LocalService } from '../src/infra/local-services.js';
import { connectRedis } from '../src/redis/client.js';
import { seedProduct } from '../src/sale/seed.js';
import {
  benchScope,
  dropDatabaseIfOurs,
  floodLoad,
  mergeRounds,
  printTable,
  nodeCpuSeconds,
  roundsArgs,
  SERVE_FOR_LOAD,
  startServer,
  type ChildServer,
  type LoadResult,
} from './lib.js';

const { duration, rounds, connections, floodRate, json, log } = roundsArgs();
/** Buys/s of the latency rounds: well below what each case sustains on 2 cores. */
const PACED_RATE = 1_000;

/** CPU seconds of every Redis process of a case. */
async function redisCpu(nodes: LocalService[]): Promise<number> {
  let total = 0;
  for (const node of nodes) total += await nodeCpuSeconds(node.port);
  return total;
}

const dataDir = await mkdtemp(join(tmpdir(), 'fsale-bench-cluster-'));
const single = await startRedisServer({ dataDir: join(dataDir, 'single') });
const cluster = await startRedisCluster({ dataDir: join(dataDir, 'cluster') });
const scope = benchScope('cl');
await migrate(scope.databaseUrl);
const pool = await connectPostgres(scope.databaseUrl);
const serve = [...SERVE_FOR_LOAD];

interface Case {
  name: string;
  redisUrl: string;
  nodes: LocalService[];
  extra: string[];
  server?: ChildServer;
  rounds: { result: LoadResult; redisCpu: number }[];
  paced: LoadResult[];
}
const cases: Case[] = [
  {
    name: 'a: one Redis node',
    redisUrl: single.url,
    nodes: [single],
    extra: [],
    rounds: [],
    paced: [],
  },
  {
    name: 'b: Redis Cluster (3+3)',
    redisUrl: cluster.url,
    nodes: cluster.nodes,
    extra: [],
    rounds: [],
    paced: [],
  },
  {
    name: 'c: Redis Cluster, --durability replica',
    redisUrl: cluster.url,
    nodes: cluster.nodes,
    extra: ['--durability', 'replica'],
    rounds: [],
    paced: [],
  },
];
try {
  for (const c of cases) {
    const redis = await connectRedis(c.redisUrl);
    await seedProduct(
      { pool, redis, keyPrefix: scope.keyPrefix },
      { productId: 'plenty', stock: 50_000_000, perUserLimit: 1_000_000, reset: true },
    );
    redis.disconnect();
    c.server = await startServer(process.execPath, [...serve, ...c.extra], {
      ...scope.env,
      REDIS_URL: c.redisUrl,
    });
  }
  const slice = duration / rounds;
  /** One round of one case at `rate`; `tag` keeps its users and keys apart from every other. */
  const load = (c: Case, rate: number, tag: string) =>
    floodLoad(c.name, {
      url: c.server?.url ?? '',
      productId: 'plenty',
      connections,
      durationSeconds: slice,
      rate,
      secret: scope.secret,
      runTag: `${scope.run}${c.name.split(':')[0] ?? ''}${tag}`,
    });
  for (let round = 1; round <= rounds; round += 1) {
    for (const c of cases) {
      log(`${c.name}: round ${round}/${rounds}, ${slice} s`);
      const before = await redisCpu(c.nodes);
      const result = await load(c, floodRate, String(round));
      c.rounds.push({ result, redisCpu: (await redisCpu(c.nodes)) - before });
    }
  }
  for (let round = 1; round <= rounds; round += 1) {
    for (const c of cases) {
      log(`${c.name}: latency round ${round}/${rounds}, ${slice} s at ${PACED_RATE} buys/s`);
      c.paced.push(await load(c, PACED_RATE, `p${round}`));
    }
  }
} finally {
  await Promise.all(cases.flatMap((c) => (c.server === undefined ? [] : [c.server.stop()])));
  await pool.end();
  await dropDatabaseIfOurs(scope.databaseUrl, 'fsale_bench_');
  await cluster.stop();
  await single.stop();
  await rm(dataDir, { recursive: true, force: true });
}

const results = cases.map((c) => {
  const merged = mergeRounds(
    c.rounds.map((r) => r.result),
    duration,
  );
  const cpu = c.rounds.reduce((sum, r) => sum + r.redisCpu, 0);
  return { ...merged, redisCpuUsPerBuy: Math.round((cpu * 1e6) / Math.max(1, merged.total)) };
});
const [node, onCluster, durable] = results;
const paced = cases.map((c) => mergeRounds(c.paced, duration));
const summary = {
  benchmark: 'cluster',
  durationSeconds: duration,
  rounds,
  connections,
  results,
  pacedRate: PACED_RATE,
  paced,
  ratios: {
    clusterToNode: +((onCluster?.requestsPerSecond ?? 0) / (node?.requestsPerSecond ?? 1)).toFixed(
      3,
    ),
    durableToCluster: +(
      (durable?.requestsPerSecond ?? 0) / (onCluster?.requestsPerSecond ?? 1)
    ).toFixed(3),
  },
};
if (json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    ['case', 'buys/s', 'p50 ms', 'p99 ms', 'Redis CPU µs/buy', 'statuses'],
    results.map((r) => [
      r.name,
      r.requestsPerSecond,
      r.p50Ms,
      r.p99Ms,
      r.redisCpuUsPerBuy,
      JSON.stringify(r.statuses),
    ]),
  );
  printTable(
    ['case', `at ${PACED_RATE} buys/s`, 'p50 ms', 'p99 ms', 'statuses'],
    paced.map((r) => [r.name, r.requestsPerSecond, r.p50Ms, r.p99Ms, JSON.stringify(r.statuses)]),
  );
  console.log(
    `cluster / node: ${summary.ratios.clusterToNode}; durability replica / cluster: ${summary.ratios.durableToCluster}`,
  );
}
