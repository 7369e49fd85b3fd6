// bench/shard-tail.ts — what the tail of a stock-sharded sale costs a buyer (docs/ARCHITECTURE.md
// section 10), on a local Redis Cluster (3 masters + 3 replicas), K = 3 shards, one per master,
// calling the buy path (reserveStock) in process so every Redis command is counted:
//   (a) home shard has units: the buy script alone
//   (b) home shard empty, every unit on one other shard: the buyer borrows, then buys
//   (c) the product sold out: the buyer borrows nothing and proves it (double collect)
//   (d) the tail under contention: `--tail-buyers` buyers, `--in-flight` at a time, none of them
//       on the shard holding the last `--tail-stock` units
// (a)-(c) one buy at a time, the units gathered again before each (outside the count), so each
// measured buy meets the same state: round trips (event-loop turns in which the buy sent at
// least one command: the reads of every shard at once count one) and Redis commands per buy,
// p50/p99 latency. (d): commands per buy and latency p50/p99, and the answers. Usage:
//   npm run bench:shard-tail [-- --buys 300 --tail-stock 300 --tail-buyers 1500 --in-flight 50 --json]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster } from 'ioredis';
import { migrate } from '../src/db/migrate.js';
import { connectPostgres } from '../src/db/pool.js';
import { newOrderId } from '../src/domain/order-id.js';
import { startRedisCluster } from '../src/infra/local-cluster.js';
import { connectRedis } from '../src/redis/client.js';
import { connectBuyPath, type BuyPathRedis } from '../src/redis/resp-cluster.js';
import { homeShardIndex, readLayout, type ProductLayout } from '../src/redis/sale-state.js';
import { BuyCode, reserveStock } from '../src/sale/buy.js';
import { seedProduct } from '../src/sale/seed.js';
import { StockLayouts } from '../src/sale/stock-shards.js';
import { gatherUnits } from '../test/helpers/sale-state.js';
import { benchScope, dropDatabaseIfOurs, printTable } from './lib.js';

const { values } = parseArgs({
  options: {
    buys: { type: 'string', default: '300' },
    'tail-stock': { type: 'string', default: '300' },
    'tail-buyers': { type: 'string', default: '1500' },
    'in-flight': { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
const BUYS = Number(values.buys);
const TAIL_STOCK = Number(values['tail-stock']);
const TAIL_BUYERS = Number(values['tail-buyers']);
const IN_FLIGHT = Number(values['in-flight']);
const SHARDS = 3;
const log = (line: string) => (values.json ? process.stderr.write(`${line}\n`) : console.log(line));

/** Commands sent, and the event-loop turns they were sent in (a turn = one round trip). */
const counter = { commands: 0, trips: 0, turnOpen: false };
function counted(): void {
  counter.commands += 1;
  if (counter.turnOpen) return;
  counter.turnOpen = true;
  counter.trips += 1;
  setImmediate(() => (counter.turnOpen = false));
}

/** The buy path's client, each command counted. */
function countingBuyPath(inner: BuyPathRedis): BuyPathRedis {
  return {
    call: (args) => (counted(), inner.call(args)),
    evalScript: (script, keysThenArgs, durability) => (
      counted(),
      inner.evalScript(script, keysThenArgs, durability)
    ),
    quit: () => inner.quit(),
    disconnect: () => inner.disconnect(),
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
const round1 = (n: number) => Math.round(n * 10) / 10;

const dataDir = await mkdtemp(join(tmpdir(), 'fsale-bench-tail-'));
const cluster = await startRedisCluster({ dataDir });
const scope = benchScope('tl');
await migrate(scope.databaseUrl);
const pool = await connectPostgres(scope.databaseUrl);
const redis = await connectRedis(cluster.url);
if (!(redis instanceof Cluster)) throw new Error('expected a cluster client');
// The borrowing's own client (StockLayouts.redis), each command counted.
const borrowing = await connectRedis(cluster.url);
const send = borrowing.sendCommand.bind(borrowing);
borrowing.sendCommand = (command, stream, node) => (counted(), send(command, stream, node));
const buyPath = countingBuyPath(await connectBuyPath(cluster.url, { name: 'fsale-bench-tail' }));
const layouts = new StockLayouts(borrowing, scope.keyPrefix);
const policy = { rateLimit: 0, rateWindowMs: 1_000 };

async function seed(productId: string, stock: number): Promise<ProductLayout> {
  await seedProduct(
    { pool, redis, keyPrefix: scope.keyPrefix },
    { productId, stock, perUserLimit: 1_000_000, stockShards: SHARDS, reset: true },
  );
  return readLayout(redis, scope.keyPrefix, productId);
}

/** `count` user ids whose home shard is (or, with `away`, is not) `shard`. */
function usersOn(shard: number, count: number, tag: string, away = false): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < count; i++) {
    if ((homeShardIndex(`${tag}${i}`, SHARDS) === shard) !== away) users.push(`${tag}${i}`);
  }
  return users;
}

function buy(productId: string, userId: string) {
  return reserveStock(
    buyPath,
    scope.keyPrefix,
    { productId, userId, qty: 1, idempotencyKey: newOrderId(), orderId: newOrderId() },
    policy,
    layouts,
  );
}

interface Row {
  name: string;
  buys: number;
  roundTrips: number | null;
  commands: number;
  p50Ms: number;
  p99Ms: number;
  answers: Record<string, number>;
}

/** One buy at a time, `prepare` (uncounted) before each. */
async function oneByOne(
  name: string,
  productId: string,
  users: string[],
  prepare: () => Promise<void>,
): Promise<Row> {
  const latencies: number[] = [];
  const answers: Record<string, number> = {};
  let commands = 0;
  let trips = 0;
  for (const user of users) {
    await prepare();
    await new Promise((resolve) => setImmediate(resolve));
    const [c0, t0] = [counter.commands, counter.trips];
    const started = performance.now();
    const { code } = await buy(productId, user);
    latencies.push(performance.now() - started);
    commands += counter.commands - c0;
    trips += counter.trips - t0;
    answers[code] = (answers[code] ?? 0) + 1;
  }
  latencies.sort((x, y) => x - y);
  return {
    name,
    buys: users.length,
    roundTrips: round1(trips / users.length),
    commands: round1(commands / users.length),
    p50Ms: round1(percentile(latencies, 50)),
    p99Ms: round1(percentile(latencies, 99)),
    answers,
  };
}

const rows: Row[] = [];
try {
  const plenty = await seed('tail-home', 1_000_000);
  log('a: home shard has units');
  rows.push(
    await oneByOne(
      'a: home shard has units',
      plenty.productId,
      usersOn(1, BUYS, 'a'),
      async () => {},
    ),
  );

  const lend = await seed('tail-borrow', BUYS * SHARDS);
  log('b: every unit on another shard');
  rows.push(
    await oneByOne(
      'b: borrows from another shard',
      lend.productId,
      usersOn(0, BUYS, 'b', true),
      () => gatherUnits(redis, lend, 0),
    ),
  );

  const none = await seed('tail-sold-out', 0);
  log('c: sold out');
  rows.push(
    await oneByOne('c: sold out (proved)', none.productId, usersOn(1, BUYS, 'c'), async () => {}),
  );

  const tail = await seed('tail-contended', TAIL_STOCK);
  await gatherUnits(redis, tail, 0);
  log(`d: ${TAIL_BUYERS} buyers, ${IN_FLIGHT} in flight, ${TAIL_STOCK} units on another shard`);
  const users = usersOn(0, TAIL_BUYERS, 'd', true);
  const c0 = counter.commands;
  const latencies: number[] = [];
  const answers: Record<string, number> = {};
  let next = 0;
  const lane = async () => {
    for (let user = users[next++]; user !== undefined; user = users[next++]) {
      const started = performance.now();
      const { code } = await buy(tail.productId, user);
      latencies.push(performance.now() - started);
      answers[code] = (answers[code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  latencies.sort((x, y) => x - y);
  rows.push({
    name: `d: ${TAIL_BUYERS} buyers, ${IN_FLIGHT} in flight, ${TAIL_STOCK} units on another shard`,
    buys: users.length,
    roundTrips: null,
    commands: round1((counter.commands - c0) / users.length),
    p50Ms: round1(percentile(latencies, 50)),
    p99Ms: round1(percentile(latencies, 99)),
    answers,
  });
  if ((answers[BuyCode.Accepted] ?? 0) !== TAIL_STOCK)
    throw new Error(`d: ${answers[BuyCode.Accepted] ?? 0} accepted of ${TAIL_STOCK} units`);
} finally {
  await buyPath.quit();
  redis.disconnect();
  borrowing.disconnect();
  await pool.end();
  await dropDatabaseIfOurs(scope.databaseUrl, 'fsale_bench_');
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
}

const codeName = new Map<number, string>(Object.entries(BuyCode).map(([k, v]) => [v, k]));
const named = (answers: Record<string, number>) =>
  Object.fromEntries(Object.entries(answers).map(([k, n]) => [codeName.get(Number(k)) ?? k, n]));
const summary = {
  benchmark: 'shard-tail',
  shards: SHARDS,
  rows: rows.map((r) => ({ ...r, answers: named(r.answers) })),
};
if (values.json) console.log(JSON.stringify(summary, null, 2));
else
  printTable(
    ['case', 'buys', 'round trips/buy', 'Redis commands/buy', 'p50 ms', 'p99 ms', 'answers'],
    summary.rows.map((r) => [
      r.name,
      r.buys,
      r.roundTrips ?? '',
      r.commands,
      r.p50Ms,
      r.p99Ms,
      JSON.stringify(r.answers),
    ]),
  );
