// Shared by the benchmarks: machine facts, child servers, autocannon runs, tables.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Table from 'cli-table3';
import pg from 'pg';
import { format, resolveConfig } from 'prettier';
import { Redis } from 'ioredis';
import { mintTokens } from '../src/auth/tokens.js';
import { newOrderId } from '../src/domain/order-id.js';
import type { Redis as SaleRedis } from '../src/redis/client.js';
import { startRedisCluster } from '../src/infra/local-cluster.js';
import type { LocalService } from '../src/infra/local-services.js';
import { productKeys } from '../src/redis/keys.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Where a benchmark runs: its own database and key prefix on the local services. */
export interface BenchScope {
  run: string;
  redisUrl: string;
  /** The PostgreSQL server (its maintenance database), for machine facts. */
  serverUrl: string;
  /** This run's own database, created by migrate and dropped at the end. */
  databaseUrl: string;
  keyPrefix: string;
  secret: string;
  /** The environment for `fsale` children pointing at this scope. */
  env: NodeJS.ProcessEnv;
}

export function benchScope(
  tag = '',
  services: { redisUrl?: string; serverUrl?: string } = {},
): BenchScope {
  const redisUrl = services.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const serverUrl =
    services.serverUrl ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const run = randomBytes(4).toString('hex');
  const database = new URL(serverUrl);
  database.pathname = `/fsale_bench_${tag}${run}`;
  const databaseUrl = database.toString();
  const keyPrefix = `bench_${tag}${run}`;
  const secret = randomBytes(24).toString('hex');
  return {
    run,
    redisUrl,
    serverUrl,
    databaseUrl,
    keyPrefix,
    secret,
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      FSALE_KEY_PREFIX: keyPrefix,
      FSALE_JWT_SECRET: secret,
    },
  };
}

export type BuyRequest = () => { headers: Record<string, string>; body: string };

/**
 * Buy requests for autocannon: users taken in turn from `users` tokens, a fresh
 * Idempotency-Key each, so no request is a replay.
 */
export function buyRequests(
  scope: BenchScope,
  users: number,
  userTag: string,
): (productId: string) => BuyRequest {
  const tokens = mintTokens(
    scope.secret,
    Array.from({ length: users }, (_, i) => `${userTag}${i}`),
    3600,
  );
  let n = 0;
  return (productId) => () => {
    n += 1;
    return {
      headers: {
        authorization: `Bearer ${tokens[n % tokens.length] ?? ''}`,
        'idempotency-key': `${scope.run}-${n}`,
        'content-type': 'application/json',
      },
      body: `{"productId":"${productId}","qty":1}`,
    };
  };
}

export interface Machine {
  date: string;
  cores: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  redis: string;
  postgres: string;
}

export async function machine(redisUrl: string, databaseUrl: string): Promise<Machine> {
  const redis = new Redis(redisUrl);
  const info = await redis.info('server');
  redis.disconnect();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
  await client.end();
  return {
    date: new Date().toISOString(),
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    postgres: rows[0]?.server_version ?? 'unknown',
  };
}

/** utime + stime of a process, in seconds (Linux /proc). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Resident memory of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  return (
    Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
  );
}

/** CPU seconds the Redis server has used (user + sys), from INFO cpu. */
export async function redisCpuSeconds(redis: {
  info(section: 'cpu'): Promise<string>;
}): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return read('used_cpu_user') + read('used_cpu_sys');
}

/** A Redis node's INFO section, over a connection of its own (a cluster node by its port). */
async function nodeInfo(port: number, section: 'cpu' | 'replication'): Promise<string> {
  const client = new Redis({ port, lazyConnect: true });
  await client.connect();
  try {
    return await client.info(section);
  } finally {
    client.disconnect();
  }
}

/** CPU seconds of the Redis node on `port`. */
export function nodeCpuSeconds(port: number): Promise<number> {
  return redisCpuSeconds({ info: () => nodeInfo(port, 'cpu') });
}

export async function isMasterNode(port: number): Promise<boolean> {
  return /role:master/.test(await nodeInfo(port, 'replication'));
}

/** A local Redis Cluster of 3 masters + 3 replicas for a benchmark, and its masters' CPU. */
export interface BenchCluster {
  url: string;
  masters: LocalService[];
  /** CPU seconds each master has used so far, by port. */
  mastersCpu(): Promise<Map<number, number>>;
  stop(): Promise<void>;
}

export async function startBenchCluster(dataDir: string): Promise<BenchCluster> {
  const cluster = await startRedisCluster({ dataDir });
  const masters: LocalService[] = [];
  for (const node of cluster.nodes) if (await isMasterNode(node.port)) masters.push(node);
  return {
    url: cluster.url,
    masters,
    async mastersCpu() {
      const cpu = new Map<number, number>();
      for (const node of masters) cpu.set(node.port, await nodeCpuSeconds(node.port));
      return cpu;
    },
    stop: () => cluster.stop(),
  };
}

/**
 * Each master's CPU µs per buy between two `mastersCpu` readings, in the order of `masters`
 * (idle masters still spend a little: cron, pings), and their sum: what one buy of the product
 * costs the cluster.
 */
export function mastersCpuPerBuy(
  masters: LocalService[],
  spent: Map<number, number>,
  buys: number,
): { byMaster: number[]; total: number } {
  const byMaster = masters.map(
    (m) => +(((spent.get(m.port) ?? 0) * 1e6) / Math.max(1, buys)).toFixed(1),
  );
  return { byMaster, total: +byMaster.reduce((a, b) => a + b, 0).toFixed(1) };
}

/** What each master spent between two `mastersCpu` readings, in CPU seconds. */
export function cpuSpent(
  before: Map<number, number>,
  after: Map<number, number>,
): Map<number, number> {
  return new Map([...after].map(([port, s]) => [port, s - (before.get(port) ?? 0)]));
}

/**
 * The flags of a benchmark whose cases run in interleaved rounds, each driven by fsale flood's
 * engine paced above capacity (bench/cluster.ts, bench/hot-product.ts).
 */
export function roundsArgs() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '12' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '50' },
      'flood-rate': { type: 'string', default: '60000' },
      json: { type: 'boolean', default: false },
    },
  });
  const duration = Number(values.duration);
  const rounds = Number(values.rounds);
  if (!(duration >= 6) || !Number.isInteger(rounds) || rounds < 1) {
    throw new Error('--duration must be >= 6 (seconds per case) and --rounds a positive integer');
  }
  const json = values.json;
  return {
    duration,
    rounds,
    connections: Number(values.connections),
    floodRate: Number(values['flood-rate']),
    json,
    /** Progress: on stderr under --json, so stdout stays one JSON document. */
    log: (line: string) => (json ? process.stderr.write(line + '\n') : console.log(line)),
  };
}

/**
 * `fsale serve` as every load benchmark runs it: on a free port, with no per-user rate limit
 * and no bound on the buy queue, so what is measured is the server's own cost. Add flags after.
 */
export const SERVE_FOR_LOAD: readonly string[] = [
  `${ROOT}bin/run.js`,
  'serve',
  '--port',
  '0',
  '--rate-limit',
  '0',
  '--max-queue',
  '100000000',
];

export interface ChildServer {
  url: string;
  child: ChildProcess;
  stop: () => Promise<void>;
}

/** Starts a server process and resolves once it prints `listening on <url>`. */
export function startServer(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<ChildServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url !== undefined) {
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({
          url,
          child,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

export interface LoadResult {
  name: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  total: number;
  statuses: Record<string, number>;
  errors: number;
  timeouts: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  durationSeconds: number;
  /** Called for every request; returns the headers and body to send. */
  request: BuyRequest;
}

export async function load(name: string, options: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    method: 'POST',
    requests: [
      {
        method: 'POST',
        path: '/order/buy',
        setupRequest: (request) => {
          const { headers, body } = options.request();
          return { ...request, headers: { ...request.headers, ...headers }, body };
        },
      },
    ],
  });
  const statuses: Record<string, number> = {};
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {}))
    statuses[status] = stat.count ?? 0;
  return {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    total: result.requests.total,
    statuses,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/**
 * One case measured in several slices (see bench/buy.ts): requests/s over the whole measured
 * time, statuses and errors summed, p50 the median of the slices' p50 and p99 the worst
 * slice's p99 (percentiles of slices cannot be merged exactly; this errs on the slow side).
 */
export function mergeRounds(slices: LoadResult[], durationSeconds: number): LoadResult {
  const first = slices[0];
  if (first === undefined) throw new Error('no measured slices');
  const total = slices.reduce((sum, r) => sum + r.total, 0);
  const statuses: Record<string, number> = {};
  for (const slice of slices) {
    for (const [status, count] of Object.entries(slice.statuses)) {
      statuses[status] = (statuses[status] ?? 0) + count;
    }
  }
  const p50s = slices.map((r) => r.p50Ms).sort((x, y) => x - y);
  return {
    name: first.name,
    requestsPerSecond: Math.round(total / durationSeconds),
    p50Ms: p50s[Math.floor(p50s.length / 2)] ?? first.p50Ms,
    p99Ms: Math.max(...slices.map((r) => r.p99Ms)),
    total,
    statuses,
    errors: slices.reduce((sum, r) => sum + r.errors, 0),
    timeouts: slices.reduce((sum, r) => sum + r.timeouts, 0),
  };
}

export function printTable(head: string[], rows: (string | number)[][]): void {
  const table = new Table({ head });
  table.push(...rows.map((row) => row.map(String)));
  console.log(table.toString());
}

/** A markdown table, as `printTable` prints it to a terminal. */
export function markdownTable(head: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c) => String(c).replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Replaces what lies between the markers `start` and `end` of a markdown file with
 * `markdown`, formatted as `npm run lint` expects.
 */
export async function rewriteBlock(
  path: string,
  start: string,
  end: string,
  markdown: string,
): Promise<void> {
  const text = readFileSync(path, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to < from) throw new Error(`${path} has no ${start} ... ${end} block`);
  const next = `${text.slice(0, from + start.length)}\n${markdown}\n${text.slice(to)}`;
  const options = (await resolveConfig(path)) ?? {};
  writeFileSync(path, await format(next, { ...options, filepath: path }));
}

/** Drops a database this benchmark created (its name carries our prefix), never another. */
export async function dropDatabaseIfOurs(databaseUrl: string, namePrefix: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = url.pathname.slice(1);
  if (!name.startsWith(namePrefix)) throw new Error(`refusing to drop ${name}`);
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

export interface FloodLoadOptions {
  url: string;
  productId: string;
  /** Requests out at once: arrivals beyond them wait, so every connection stays busy. */
  connections: number;
  durationSeconds: number;
  /** Arrivals/s asked for: above what the server can answer, so the server sets the pace. */
  rate: number;
  secret: string;
  /** Distinct per case and round: keys are never replays. */
  runTag: string;
}

/**
 * One case driven by fsale flood's own engine: an open model paced above capacity with at
 * most `connections` requests out, stopped after `durationSeconds` (arrivals still waiting
 * are dropped). Throughput is answers per second; latency from the intended send time would
 * only measure the queue this pacing builds on purpose, so p50/p99 are from the answers of
 * the last full second of the timeline (still queueing-dominated: compare throughput).
 */
export async function floodLoad(name: string, options: FloodLoadOptions): Promise<LoadResult> {
  const { runFlood } = await import('../src/load/flood.js');
  const { WHOLE } = await import('../src/load/slices.js');
  const stop = new AbortController();
  const summary = await runFlood(
    {
      url: new URL(options.url),
      productId: options.productId,
      qty: 1,
      model: {
        kind: 'open',
        shape: { rate: options.rate, rampSeconds: 0, spikes: [] },
        arrivals: 'uniform',
        durationSeconds: options.durationSeconds,
        requests: undefined,
      },
      // Users repeat (the products allow a million each); every key is new.
      users: 20_000,
      userPrefix: `bf${options.runTag}-`,
      keyPrefix: `bf${options.runTag}-k`,
      jwtSecret: options.secret,
      retryRatio: 0,
      doubleClick: false,
      seed: 1,
      timeoutMs: 10_000,
      maxInFlight: options.connections,
      pipelining: 1,
      slice: WHOLE,
      maxSendLagMs: 60_000,
      follow: undefined,
      thresholds: [],
      audit: undefined,
      auditAttempts: 1,
      auditRetryDelayMs: 0,
      preflight: false,
    },
    {
      onProgress: (p) => {
        if (p.elapsedSeconds >= options.durationSeconds) stop.abort();
      },
    },
    stop.signal,
  );
  const statuses = summary.statusCodes;
  return {
    name,
    requestsPerSecond: Math.round(summary.requests.answered / summary.rate.elapsedSeconds),
    p50Ms: summary.latencyMs?.p50 ?? 0,
    p99Ms: summary.latencyMs?.p99 ?? 0,
    total: summary.requests.answered,
    statuses,
    errors: summary.requests.networkErrors,
    timeouts: summary.networkErrors.TIMEOUT ?? 0,
  };
}

/**
 * Fills a product's order stream with `orders` entries in the buy script's exact format and
 * takes the same units off its Redis stock, as if that many buys had been accepted.
 */
export async function prefillOrders(
  redis: SaleRedis,
  keyPrefix: string,
  productId: string,
  orders: number,
): Promise<void> {
  const keys = productKeys(keyPrefix, productId);
  const chunk = 2_000;
  for (let start = 0; start < orders; start += chunk) {
    const pipeline = redis.pipeline();
    const now = Date.now();
    for (let i = start; i < Math.min(orders, start + chunk); i++) {
      pipeline.xadd(
        keys.orders,
        '*',
        'id',
        newOrderId(now),
        'user',
        `u${i}`,
        'qty',
        '1',
        'key',
        `k${i}`,
        'at',
        String(now),
      );
    }
    pipeline.decrby(keys.stock, Math.min(chunk, orders - start));
    await pipeline.exec();
  }
}

/** One JSON status line of a `fsale work ...` child, when it arrived and the CPU used by then. */
export interface WorkerLine {
  /** performance.now() when the line was read. */
  at: number;
  /** The child's CPU seconds at that moment. */
  cpuSeconds: number;
  line: { event?: string } & Record<string, unknown>;
}

export interface WorkerRun {
  lines: WorkerLine[];
  /** The line `until` accepted. */
  reached: WorkerLine;
  /** The last line the child printed (its final status), after SIGTERM. */
  last: WorkerLine | undefined;
}

/**
 * Runs `fsale <args> --json --status-interval 50ms` until a status line satisfies `until`
 * (or `timeoutMs` passes: an error), calls `atReached` while the child still runs (to read
 * what it holds, such as its PostgreSQL backends), then stops it with SIGTERM and requires a
 * clean exit.
 */
export async function runWorkerUntil(
  args: string[],
  env: NodeJS.ProcessEnv,
  until: (line: WorkerLine['line']) => boolean,
  options: { timeoutMs: number; atReached?: () => Promise<void> },
): Promise<WorkerRun> {
  const child = spawn(
    process.execPath,
    [`${ROOT}bin/run.js`, ...args, '--json', '--status-interval', '50ms'],
    { env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines: WorkerLine[] = [];
  const reached = new Promise<WorkerLine>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`fsale ${args.join(' ')}: not done after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: WorkerLine['line'];
      try {
        line = JSON.parse(text) as WorkerLine['line'];
      } catch {
        return; // not a status line
      }
      const entry: WorkerLine = {
        at: performance.now(),
        cpuSeconds: cpuSeconds(child.pid ?? 0),
        line,
      };
      lines.push(entry);
      if (until(entry.line)) {
        clearTimeout(timer);
        resolve(entry);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`fsale ${args.join(' ')} exited early with code ${code}`));
    });
  });
  try {
    const line = await reached;
    await options.atReached?.();
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`fsale ${args.join(' ')} exited with code ${code}`);
    return { lines, reached: line, last: lines.at(-1) };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  }
}

/** What one SSE client process (bench/sse-clients.ts) reports. */
export interface SseReport {
  /** ms from each PUBLISH to its receipt, per client. */
  lags: number[];
  events: number;
  connected: number;
}

export interface SseClients {
  /** Sends the publish times and collects every process's report. */
  report: (published: [number, number][]) => Promise<SseReport[]>;
  close: () => void;
}

/** Opens `clients` SSE connections to `url`, spread over `processes` child processes. */
export async function openSseClients(
  url: string,
  clients: number,
  processes: number,
): Promise<SseClients> {
  const children = Array.from({ length: processes }, (_, i) => {
    const n = Math.floor(clients / processes) + (i < clients % processes ? 1 : 0);
    return fork(`${ROOT}bench/sse-clients.ts`, [url, String(n)], { execArgv: ['--import', 'tsx'] });
  });
  const close = () => {
    for (const child of children) child.kill();
  };
  try {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve, reject) => {
            child.on('message', (m: { type: string; message?: string }) => {
              if (m.type === 'connected') resolve();
              if (m.type === 'error') reject(new Error(m.message));
            });
            child.once('exit', (code) =>
              reject(new Error(`SSE client process exited with ${code}`)),
            );
          }),
      ),
    );
  } catch (error) {
    close();
    throw error;
  }
  return {
    close,
    report: (published) =>
      Promise.all(
        children.map(
          (child) =>
            new Promise<SseReport>((resolve, reject) => {
              child.on('message', (m: { type: string } & SseReport) => {
                if (m.type === 'report') resolve(m);
              });
              child.once('exit', (code) =>
                reject(new Error(`SSE client process exited with ${code} before its report`)),
              );
              child.send({ type: 'report', published });
            }),
        ),
      ),
  };
}

/**
 * Publishes a stock change on `channel` every `everyMs` for `durationMs`, counting down from
 * `start`; returns each change's [remaining, publish time] for the clients' lag.
 */
export async function publishStockChanges(
  redis: SaleRedis,
  channel: string,
  start: number,
  durationMs: number,
  everyMs: number,
): Promise<[number, number][]> {
  const published: [number, number][] = [];
  let remaining = start;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    remaining -= 1;
    published.push([remaining, performance.timeOrigin + performance.now()]);
    await redis.spublish(channel, String(remaining));
    const next = started + published.length * everyMs;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  return published;
}

/** What one wrk run measured, and the CPU wrk itself used. */
export interface WrkResult extends LoadResult {
  cpuSeconds: number;
}

/**
 * wrk (closed loop, one thread, `connections` connections) POSTing `body` to `path`; every
 * request gets its own Idempotency-Key (`keyPrefix` + a counter) and, with `token`, a bearer
 * token. Status codes are counted by its Lua response hook; its own CPU comes from `times` in
 * the shell that ran it. Throws when wrk is not installed (`apt install wrk`).
 */
export async function wrkLoad(
  name: string,
  options: {
    url: string;
    path: string;
    body: string;
    connections: number;
    durationSeconds: number;
    keyPrefix: string;
    token?: string | undefined;
  },
): Promise<WrkResult> {
  const dir = await mkdtemp(join(tmpdir(), 'fsale-wrk-'));
  const script = join(dir, 'buy.lua');
  const headers = [
    `["Content-Type"] = "application/json"`,
    ...(options.token === undefined ? [] : [`["Authorization"] = "Bearer ${options.token}"`]),
  ];
  await writeFile(
    script,
    `local n = 0
statuses = {}
request = function()
  n = n + 1
  return wrk.format("POST", "${options.path}", { ${headers.join(', ')}, ["Idempotency-Key"] = "${options.keyPrefix}" .. n }, '${options.body}')
end
response = function(status) statuses[status] = (statuses[status] or 0) + 1 end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do io.write("status ", status, " ", count, "\\n") end
  end
  io.write("p50 ", latency:percentile(50), "\\np99 ", latency:percentile(99), "\\n")
  io.write("errors ", summary.errors.connect + summary.errors.read + summary.errors.write, " ", summary.errors.timeout, "\\n")
end
`,
  );
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('bash', [
        '-c',
        `wrk -t1 -c${options.connections} -d${options.durationSeconds}s -s ${script} ${options.url} && times`,
      ]);
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.once('exit', (code) =>
        code === 0 ? resolve(text) : reject(new Error(`wrk failed: ${text}`)),
      );
    });
    const statuses: Record<string, number> = {};
    for (const [, status, count] of output.matchAll(/^status (\d+) (\d+)$/gm))
      statuses[status ?? ''] = Number(count);
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    const [, errors, timeouts] = /^errors (\d+) (\d+)$/m.exec(output) ?? [];
    // `times` prints the shell's user/system time, then its children's: 0m1.234s 0m0.456s.
    const clock = [...output.matchAll(/(\d+)m([\d.]+)s/g)].map(
      (m) => Number(m[1]) * 60 + Number(m[2]),
    );
    return {
      name,
      requestsPerSecond: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1])),
      p50Ms: +(Number(/^p50 ([\d.]+)$/m.exec(output)?.[1]) / 1000).toFixed(3),
      p99Ms: +(Number(/^p99 ([\d.]+)$/m.exec(output)?.[1]) / 1000).toFixed(3),
      total,
      statuses,
      errors: Number(errors ?? 0),
      timeouts: Number(timeouts ?? 0),
      cpuSeconds: (clock[2] ?? NaN) + (clock[3] ?? NaN),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
