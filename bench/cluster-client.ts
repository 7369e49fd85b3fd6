// bench/cluster-client.ts — the buy path's client on a Redis Cluster: our RespCluster
// (src/redis/resp-cluster.ts) against ioredis's Cluster client running the same buy script,
// side by side in one run (interleaved rounds). What matters on the hot path is the API
// process's CPU per buy: that is what caps a process's buys/s. Each call is one real buy
// (fresh user and key, stock never runs out), 50 in flight. Usage:
//   npm run bench:cluster-client [-- --calls 40000 --rounds 3 --json]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster } from 'ioredis';
import { startRedisCluster } from '../src/infra/local-cluster.js';
import { productKeys } from '../src/redis/keys.js';
import { RespCluster, type BuyPathRedis } from '../src/redis/resp-cluster.js';
import type { RespReply } from '../src/redis/resp.js';
import { nodeHostPort, parseRedisTarget } from '../src/redis/target.js';
import { BuyCode, reserveStock } from '../src/sale/buy.js';
import { newOrderId } from '../src/domain/order-id.js';
import { printTable } from './lib.js';

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '40000' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);
const IN_FLIGHT = 50;
const PREFIX = 'bcc';

/**
 * ioredis's Cluster client behind the buy path's interface, running the same script the way
 * ioredis runs scripts (defineCommand: EVALSHA, EVAL after NOSCRIPT).
 */
function ioredisBuyPath(cluster: Cluster): BuyPathRedis {
  const run = cluster as unknown as {
    fsaleBuy?: (...keysThenArgs: (string | number)[]) => Promise<RespReply>;
  };
  return {
    call: (commandArgs) =>
      cluster.call(String(commandArgs[0]), ...commandArgs.slice(1)) as Promise<RespReply>,
    evalScript: (script, keysThenArgs) => {
      if (run.fsaleBuy === undefined) {
        cluster.defineCommand('fsaleBuy', {
          numberOfKeys: script.numberOfKeys,
          lua: script.source,
        });
      }
      const buy = run.fsaleBuy;
      if (buy === undefined) throw new Error('defineCommand did not define fsaleBuy');
      return buy.apply(cluster, [...keysThenArgs]);
    },
    quit: async () => {
      await cluster.quit();
    },
    disconnect: () => cluster.disconnect(),
  };
}

const dataDir = await mkdtemp(join(tmpdir(), 'fsale-bench-cc-'));
const local = await startRedisCluster({ dataDir });
const target = parseRedisTarget(local.url);
if (target.kind !== 'cluster') throw new Error('expected a cluster');
const ours = await RespCluster.connect(target.nodes, { name: 'bench-resp-cluster' });
const ioredis = new Cluster(target.nodes.map(nodeHostPort), { enableAutoPipelining: true });
await ioredis.ping();
const clients: { name: string; redis: BuyPathRedis; cpuUs: number[]; rates: number[] }[] = [
  { name: 'RespCluster (ours)', redis: ours, cpuUs: [], rates: [] },
  {
    name: 'ioredis Cluster (auto-pipelining)',
    redis: ioredisBuyPath(ioredis),
    cpuUs: [],
    rates: [],
  },
];
let user = 0;
try {
  const keys = productKeys(PREFIX, 'plenty');
  await ours.call(['SET', keys.stock, 1_000_000_000]);
  await ours.call(['HSET', keys.sale, 'total', 1_000_000_000, 'limit', 1_000_000, 'starts', 0]);
  for (let round = 0; round <= rounds; round += 1) {
    for (const client of clients) {
      let next = 0;
      const cpu = process.cpuUsage();
      const started = performance.now();
      const lane = async () => {
        while (next < calls) {
          next += 1;
          user += 1;
          const r = await reserveStock(client.redis, PREFIX, {
            productId: 'plenty',
            userId: `u${user}`,
            qty: 1,
            idempotencyKey: `k${user}`,
            orderId: newOrderId(),
          });
          if (r.code !== BuyCode.Accepted) throw new Error(`unexpected buy code ${r.code}`);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
      const elapsed = (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      // Round 0 warms both up and is not counted.
      if (round === 0) continue;
      client.cpuUs.push((used.user + used.system) / calls);
      client.rates.push(calls / elapsed);
    }
  }
} finally {
  await ours.quit();
  ioredis.disconnect();
  await local.stop();
  await rm(dataDir, { recursive: true, force: true });
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const results = clients.map((c) => ({
  name: c.name,
  cpuUsPerBuy: +mean(c.cpuUs).toFixed(1),
  buysPerSecond: Math.round(mean(c.rates)),
}));
const [own, theirs] = results;
const summary = {
  benchmark: 'cluster-client',
  calls,
  rounds,
  inFlight: IN_FLIGHT,
  results,
  ratio: { cpuOursToIoredis: +((own?.cpuUsPerBuy ?? 0) / (theirs?.cpuUsPerBuy ?? 1)).toFixed(3) },
};
if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    ['client', 'client CPU µs/buy', 'buys/s (one process, 50 in flight)'],
    results.map((r) => [r.name, r.cpuUsPerBuy, r.buysPerSecond]),
  );
  console.log(`CPU per buy, ours / ioredis: ${summary.ratio.cpuOursToIoredis}`);
}
