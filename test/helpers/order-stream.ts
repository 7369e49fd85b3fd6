// What the order-worker tests need: orders appended to a product's stream exactly as the buy
// script appends them (with Redis stock taken, so the sale stays consistent), the worker as
// a real child process, and a view of where every order ended up.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { ORDER_GROUP, productKeys } from '../../src/redis/keys.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { RUN_JS } from './cli.js';
import type { TestServices } from './services.js';
import { parseRecord, type LogRecord } from '../../src/cli/log.js';

export interface PlannedOrder {
  id?: string;
  user: string;
  qty?: number;
  key?: string;
}

/**
 * Appends orders the way the buy script does: DECRBY stock, then XADD
 * `id <UUIDv7> user <u> qty <n> key <k> at <ms>`, in one MULTI. Returns the order ids.
 */
export async function appendOrders(
  s: TestServices,
  productId: string,
  orders: PlannedOrder[],
): Promise<string[]> {
  const keys = productKeys(s.keyPrefix, productId);
  const multi = s.redis.multi();
  const ids: string[] = [];
  for (const order of orders) {
    const id = order.id ?? newOrderId();
    const qty = order.qty ?? 1;
    ids.push(id);
    // What the buy script does: take the units, index the owner, append the order.
    multi.decrby(keys.stock, qty);
    multi.hset(keys.owners, id, order.user);
    multi.xadd(
      keys.orders,
      '*',
      'id',
      id,
      'user',
      order.user,
      'qty',
      String(qty),
      'key',
      order.key ?? `key-${id}`,
      'at',
      String(Date.now()),
    );
  }
  await multi.exec();
  return ids;
}

/** `n` one-unit orders from distinct users named `<prefix>-<i>`. */
export function buyers(prefix: string, n: number, qty = 1): PlannedOrder[] {
  return Array.from({ length: n }, (_, i) => ({ user: `${prefix}-${i}`, qty }));
}

export interface ProductState {
  rows: number;
  distinctIds: number;
  unitsPersisted: number;
  remaining: number;
  redisStock: number;
  pending: number;
  deadLetters: number;
}

export async function productState(s: TestServices, productId: string): Promise<ProductState> {
  const keys = productKeys(s.keyPrefix, productId);
  const orders = await s.pool.query<{ rows: number; ids: number; units: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, coalesce(sum(qty), 0)::int AS units
     FROM orders WHERE product_id = $1`,
    [productId],
  );
  const product = await s.pool.query<{ remaining: number }>(
    'SELECT remaining FROM products WHERE id = $1',
    [productId],
  );
  const pending = (await s.redis.xpending(keys.orders, ORDER_GROUP)) as [number, ...unknown[]];
  return {
    rows: orders.rows[0]?.rows ?? -1,
    distinctIds: orders.rows[0]?.ids ?? -1,
    unitsPersisted: orders.rows[0]?.units ?? -1,
    remaining: product.rows[0]?.remaining ?? -1,
    redisStock: Number(await s.redis.get(keys.stock)),
    pending: pending[0],
    deadLetters: await s.redis.xlen(keys.deadLetter),
  };
}

/** Order ids persisted for a product. */
export async function persistedIds(s: TestServices, productId: string): Promise<Set<string>> {
  const { rows } = await s.pool.query<{ id: string }>(
    'SELECT id::text AS id FROM orders WHERE product_id = $1',
    [productId],
  );
  return new Set(rows.map((row) => row.id));
}

/** A status record (src/cli/long-running.ts): a log record with an `event`. */
export interface StatusLine {
  event: string;
  msg: string;
  persisted: number;
  duplicates: number;
  deadLettered: number;
  claimed: number;
  batches: number;
  lagMs: number;
  consumer: string;
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Status records printed on stdout so far. */
  lines: StatusLine[];
  /** Every log record printed on stdout so far, status records included. */
  records: LogRecord[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first status line matching `predicate`. */
  waitForLine: (
    predicate: (line: StatusLine) => boolean,
    timeoutMs?: number,
  ) => Promise<StatusLine>;
}

const running = new Set<ChildProcess>();

/** SIGKILLs workers a failed test left running, so no orphan outlives the test file. */
export function killStrayWorkers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** `fsale work orders` as a real child process of the built CLI, JSON lines on stdout. */
export function startWorkerProcess(
  s: TestServices,
  args: string[],
  extraEnv: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(
    process.execPath,
    [RUN_JS, 'work', 'orders', '--json', '--status-interval', '100ms', ...args],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...s.env,
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: StatusLine[] = [];
  const records: LogRecord[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout }).on('line', (text) => {
    const record = parseRecord(text);
    if (record === undefined) throw new Error(`not a log record on stdout: ${text}`);
    records.push(record);
    if (record.event !== undefined) lines.push(record as unknown as StatusLine);
    for (const wake of waiters) wake();
  });
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const waitForLine = (predicate: (line: StatusLine) => boolean, timeoutMs = 30_000) =>
    new Promise<StatusLine>((resolve, reject) => {
      const check = () => {
        const found = lines.find(predicate);
        if (found === undefined) return;
        cleanup();
        resolve(found);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching status line after ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      void exited.then(() => {
        check();
        if (waiters.has(check)) {
          cleanup();
          reject(new Error(`worker exited before a matching line; stderr: ${stderr}`));
        }
      });
      check();
    });
  return { child, lines, records, stderr: () => stderr, exited, waitForLine };
}

/** Stops a worker with SIGTERM and expects a clean exit. */
export async function stopWorkerProcess(worker: WorkerProcess): Promise<StatusLine> {
  worker.child.kill('SIGTERM');
  const timeout = setTimeout(() => worker.child.kill('SIGKILL'), 20_000);
  const { code, signal } = await worker.exited.finally(() => clearTimeout(timeout));
  expect({ code, signal, stderr: worker.stderr() }).toMatchObject({ code: 0, signal: null });
  const last = worker.lines.at(-1);
  expect(last?.event).toBe('stopped');
  return last as StatusLine;
}
