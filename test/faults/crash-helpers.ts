// What the crash scenarios share: the stack as real `fsale` child processes (API, workers,
// gateway), a bounded buyer crowd that records every answer (or the network error instead),
// the audit with the gateway's ledger, and a seeded PRNG so a random fault schedule can be
// replayed from the seed a failing run printed.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { runAudit, type AuditReport } from '../../src/audit/audit.js';
import { fetchLedger, type LedgerEntry } from '../../src/audit/ledger.js';
import { mintTokens } from '../../src/auth/tokens.js';
import { migrate } from '../../src/db/migrate.js';
import { startPostgresServer, type LocalService } from '../../src/infra/local-services.js';
import { ORDER_GROUP, productKeys } from '../../src/redis/keys.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { isAlive, startCli, type CliProcess } from '../helpers/process.js';
import { TEST_JWT_SECRET, type TestServices } from '../helpers/services.js';

import { sleep, until } from '../helpers/wait.js';

export { sleep, until };

/** mulberry32: a tiny seeded PRNG, so a fault schedule is reproducible from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FSALE_FAULT_SEED when set (to replay a failure), else a fresh one; printed either way. */
export function faultSeed(scenario: string): number {
  const given = process.env.FSALE_FAULT_SEED;
  const seed = given !== undefined ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${scenario}: fault schedule seed ${seed} (replay with FSALE_FAULT_SEED=${seed})`);
  return seed;
}

// ---------------------------------------------------------------------------------------------
// The stack as child processes

export interface Service {
  proc: CliProcess;
  url: string;
}

/**
 * For scenarios that expect every buy accepted: the API's event-loop bound (503 while the p99
 * delay is above it) must not shed load because other test runs share this small machine.
 * Load shedding is scenario 1's and 2's business (they accept and retry a 503).
 */
export const NO_LOAD_SHEDDING = ['--max-event-loop-delay-ms', '60000'];

/** `fsale serve` (args e.g. ['--workers', '2']); resolves once it listens. */
export async function startServe(env: Record<string, string>, args: string[] = []) {
  const proc = startCli(['serve', '--port', '0', ...args], env);
  const url = await proc.waitFor(/listening on (http:\/\/[\d.:]+)/);
  return { proc, url };
}

/** `fsale gateway --speed <speed> --seed <seed>`; resolves once it listens. */
export async function startGateway(
  env: Record<string, string>,
  seed: number,
  speed = 100,
): Promise<Service> {
  const proc = startCli(
    ['gateway', '--port', '0', '--seed', String(seed), '--speed', String(speed)],
    env,
  );
  const url = await proc.waitFor(/listening on (http:\/\/[\d.:]+)/);
  return { proc, url };
}

/** A JSON status line of a worker (`work orders --json`, `work payments --json`). */
export type StatusLine = Record<string, unknown> & { event: string };

export interface Worker {
  proc: CliProcess;
  lines: StatusLine[];
  /** The newest line with `event` (status/started/stopped), if any. */
  last: (event?: string) => StatusLine | undefined;
}

function worker(args: string[], env: Record<string, string>): Worker {
  const proc = startCli(args, env);
  const lines: StatusLine[] = [];
  const stdout = proc.child.stdout;
  if (stdout === null) throw new Error('a worker child without stdout');
  createInterface({ input: stdout }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as StatusLine);
    } catch {
      // not a status line
    }
  });
  const last = (event?: string) =>
    [...lines].reverse().find((l) => event === undefined || l.event === event);
  return { proc, lines, last };
}

export function startOrderWorker(env: Record<string, string>, args: string[] = []): Worker {
  return worker(['work', 'orders', '--json', '--status-interval-ms', '200', ...args], env);
}

export function startPaymentWorker(env: Record<string, string>, args: string[] = []): Worker {
  return worker(['work', 'payments', '--json', '--status-interval-ms', '200', ...args], env);
}

/** SIGTERM and wait (SIGKILL after `graceMs` so a hung child cannot hang the file). */
export async function stopProcess(
  proc: CliProcess,
  graceMs = 30_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILL and wait until the process is gone. */
export async function killProcess(proc: CliProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGKILL');
  await proc.exited;
}

/** `fsale reconcile --once`, expected to succeed. */
export async function reconcileOnce(env: Record<string, string>): Promise<void> {
  const result = await runCli(['reconcile', '--once', '--json'], env);
  expect(result, result.stderr).toMatchObject({ code: 0 });
}

// ---------------------------------------------------------------------------------------------
// Buyers

export interface Buyer {
  user: string;
  token: string;
  key: string;
}

export function buyers(tag: string, n: number, ttlSeconds = 1800): Buyer[] {
  const users = Array.from({ length: n }, (_, i) => `${tag}${i}`);
  const tokens = mintTokens(TEST_JWT_SECRET, users, ttlSeconds);
  return users.map((user, i) => ({ user, token: tokens[i] ?? '', key: `${user}-k1` }));
}

export interface BuyAnswer {
  user: string;
  key: string;
  /** 0 when no HTTP answer came (see `error`). */
  status: number;
  body: string;
  replayed: boolean;
  orderId: string | undefined;
  /** The network error code (ECONNREFUSED, ECONNRESET, ...) when there was no answer. */
  error: string | undefined;
}

/** One POST /order/buy; a network error is recorded, not thrown. */
export async function buyOnce(url: string, productId: string, buyer: Buyer): Promise<BuyAnswer> {
  try {
    const res = await send(url, {
      method: 'POST',
      path: '/order/buy',
      headers: { authorization: `Bearer ${buyer.token}`, 'idempotency-key': buyer.key },
      body: { productId, qty: 1 },
    });
    let orderId: string | undefined;
    if (res.status === 202) orderId = (JSON.parse(res.body) as { orderId: string }).orderId;
    return {
      user: buyer.user,
      key: buyer.key,
      status: res.status,
      body: res.body,
      replayed: res.headers['idempotent-replayed'] === 'true',
      orderId,
      error: undefined,
    };
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    return {
      user: buyer.user,
      key: buyer.key,
      status: 0,
      body: '',
      replayed: false,
      orderId: undefined,
      error: code,
    };
  }
}

/**
 * Every buyer buys once, at most `concurrency` requests in flight; `target(i)` picks the API
 * for the i-th request. `onProgress(done)` runs after each answer (e.g. to inject a fault).
 */
export async function crowd(
  target: (i: number) => string,
  productId: string,
  list: Buyer[],
  concurrency: number,
  onProgress?: (done: number) => void,
): Promise<BuyAnswer[]> {
  const answers: BuyAnswer[] = new Array<BuyAnswer>(list.length);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < list.length) {
      const i = next++;
      const buyer = list[i];
      if (buyer === undefined) break;
      answers[i] = await buyOnce(target(i), productId, buyer);
      done += 1;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, lane));
  return answers;
}

/** Status -> count, network errors as `error:<code>`. */
export function tally(answers: BuyAnswer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const label = a.status === 0 ? `error:${a.error ?? '?'}` : String(a.status);
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// State

export interface StreamState {
  length: number;
  /** Entries delivered to a consumer and not acknowledged. */
  pending: number;
  /** Entries never delivered to any consumer. */
  lag: number;
  deadLetters: number;
  /** Order ids in the stream, in order. */
  orderIds: string[];
}

export async function streamState(s: TestServices, productId: string): Promise<StreamState> {
  const keys = productKeys(s.keyPrefix, productId);
  const entries = await s.redis.xrange(keys.orders, '-', '+');
  const orderIds = entries.map(([, f]) => f[f.indexOf('id') + 1] ?? '');
  const groups = (await s.redis.xinfo('GROUPS', keys.orders).catch(() => [])) as unknown[][];
  let pending = 0;
  let lag = entries.length;
  for (const group of groups) {
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
    if (info.get('name') !== ORDER_GROUP) continue;
    pending = Number(info.get('pending'));
    const reported = info.get('lag');
    lag = typeof reported === 'number' ? reported : -1;
  }
  return {
    length: entries.length,
    pending,
    lag,
    deadLetters: await s.redis.xlen(keys.deadLetter),
    orderIds,
  };
}

export interface PgOrders {
  rows: number;
  distinctIds: number;
  byStatus: Record<string, number>;
  /** (user, idempotency key) pairs holding more than one order. */
  duplicateKeys: number;
  remaining: number;
  stockTotal: number;
  ids: Set<string>;
}

export async function pgOrders(s: TestServices, productId: string): Promise<PgOrders> {
  const rows = await s.pool.query<{ id: string; status: string }>(
    'SELECT id::text AS id, status FROM orders WHERE product_id = $1',
    [productId],
  );
  const byStatus: Record<string, number> = {};
  for (const r of rows.rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const dup = await s.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM orders WHERE product_id = $1
       GROUP BY user_id, idempotency_key HAVING count(*) > 1) d`,
    [productId],
  );
  const product = await s.pool.query<{ remaining: number; stock_total: number }>(
    'SELECT remaining, stock_total FROM products WHERE id = $1',
    [productId],
  );
  return {
    rows: rows.rows.length,
    distinctIds: new Set(rows.rows.map((r) => r.id)).size,
    byStatus,
    duplicateKeys: dup.rows[0]?.n ?? -1,
    remaining: product.rows[0]?.remaining ?? -1,
    stockTotal: product.rows[0]?.stock_total ?? -1,
    ids: new Set(rows.rows.map((r) => r.id)),
  };
}

export async function redisStock(s: TestServices, productId: string): Promise<number> {
  return Number(await s.redis.get(productKeys(s.keyPrefix, productId).stock));
}

/** Every stream entry of the product is acknowledged, and in PG unless it was superseded. */
export async function waitDrained(s: TestServices, productId: string, timeoutMs = 120_000) {
  await until(
    `${productId}: every stream entry persisted and acknowledged`,
    async () => {
      const st = await streamState(s, productId);
      if (st.pending !== 0 || st.lag !== 0) return false;
      const pg = await pgOrders(s, productId);
      const superseded = new Set(
        await s.redis.hkeys(productKeys(s.keyPrefix, productId).superseded),
      );
      return st.orderIds.every((id) => pg.ids.has(id) || superseded.has(id));
    },
    timeoutMs,
  );
}

/** No order of the product is `pending` any more (the payment worker got to all of them). */
export async function waitCharged(s: TestServices, productId: string, timeoutMs = 180_000) {
  await until(
    `${productId}: every order charged (none pending)`,
    async () => ((await pgOrders(s, productId)).byStatus.pending ?? 0) === 0,
    timeoutMs,
  );
}

/** The audit (docs/ARCHITECTURE.md section 5), with the gateway's ledger when a gateway runs. */
export async function audit(
  s: TestServices,
  gatewayUrl?: string,
  productId?: string,
): Promise<AuditReport> {
  const ledger = gatewayUrl === undefined ? undefined : await fetchLedger(gatewayUrl);
  return runAudit(
    { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix, ledger },
    { productId, persistGraceMs: 0 },
  );
}

/** Asserts every check holds, listing the failing ones if not. */
export function expectAuditOk(report: AuditReport): void {
  expect(report.checks.filter((c) => !c.ok)).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.checks.length).toBeGreaterThan(0);
}

/** Successful charges per order key in the gateway's ledger. */
export function successfulCharges(ledger: LedgerEntry[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of ledger) {
    if (c.status === 'succeeded') counts.set(c.orderId, (counts.get(c.orderId) ?? 0) + 1);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL this file may stop and start (never the machine's shared server)

export interface PrivatePostgres {
  /** Server URL (database `postgres`). */
  url: string;
  port: number;
  pid(): number;
  /** `fast`: SIGINT (pg_ctl -m fast); `immediate`: SIGQUIT (crash recovery at the next start). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  destroy(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fsale-faults-pg-'));
  let server: LocalService | undefined = await startPostgresServer({ dataDir });
  const port = server.port;
  const stop = async (mode: 'fast' | 'immediate') => {
    const current = server;
    if (current === undefined) return;
    server = undefined;
    if (mode === 'fast') return current.stop();
    process.kill(current.pid, 'SIGQUIT');
    await until('the private postgres to exit', () => !isAlive(current.pid), 60_000, 50);
  };
  return {
    url: server.url,
    port,
    pid: () => server?.pid ?? -1,
    stop,
    async start() {
      if (server === undefined) server = await startPostgresServer({ dataDir, port });
    },
    async destroy() {
      await stop('fast');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Creates and migrates a database on `serverUrl`; returns its URL. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  return url.toString();
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that can freeze one client's traffic to its server (a network stall as that
// client sees it), without touching the server, which other test files share

export interface FreezingProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  through(url: string): string;
  /** Holds back everything the clients send (buffered, in order) until `thaw`. */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startFreezingProxy(targetPort: number): Promise<FreezingProxy> {
  let frozen = false;
  const held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk: Buffer) => {
      if (frozen) held.push(() => upstream.write(chunk));
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    through(url: string) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const send of held.splice(0)) send();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * `reconcile --once` until every order of the product is paid or payment_failed. A charge the
 * gateway still holds open (a hang) is rightly deferred by reconcile, so one pass may not do.
 */
export async function reconcileUntilTerminal(
  s: TestServices,
  env: Record<string, string>,
  productId: string,
  maxPasses = 30,
): Promise<number> {
  for (let pass = 1; pass <= maxPasses; pass++) {
    await reconcileOnce(env);
    const open = await s.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM orders WHERE product_id = $1
         AND status NOT IN ('paid', 'payment_failed')`,
      [productId],
    );
    if (open.rows[0]?.n === 0) return pass;
    await sleep(1_000);
  }
  throw new Error(`${productId}: orders still open after ${maxPasses} reconcile passes`);
}
