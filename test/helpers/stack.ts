// The stack as child processes of the built CLI (dist/): API, gateway, workers, reconcile.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { buildGateway, listenGateway } from '../../src/gateway/app.js';
import type { OutcomeRates } from '../../src/gateway/behaviour.js';
import { parseRecord } from '../../src/cli/log.js';
import type { FloodSummary } from '../../src/load/summary.js';
import { runCli } from './cli.js';
import { startFaultProxy, type FaultMode, type FaultProxy } from './fault-proxy.js';
import { startCli, type CliProcess } from './process.js';
import { startApi, type RunningApi } from './sale.js';
import type { TestServices } from './services.js';
import { sleep, until } from './wait.js';

export interface ApiProcess extends CliProcess {
  url: string;
}

/** `fsale serve` as a child process (dist/), resolved once it listens. */
export async function startApiProcess(
  env: Record<string, string>,
  args: string[] = [],
): Promise<ApiProcess> {
  const cli = startCli(['serve', '--port', '0', ...args], env);
  const url = await cli.waitFor(/listening on (http:\/\/[\d.:]+)/);
  return { ...cli, url };
}

export interface Service {
  proc: CliProcess;
  url: string;
}

/**
 * For scenarios that expect every buy accepted: the API's event-loop bound (503 while the p99
 * delay is above it) must not shed load because other test runs share this small machine.
 * Load shedding is scenario 1's and 2's business (they accept and retry a 503).
 */
export const NO_LOAD_SHEDDING = ['--max-event-loop-delay', '1m'];

/** `fsale serve` (args e.g. ['--api-workers', '2']); resolves once it listens. */
export async function startServe(env: Record<string, string>, args: string[] = []) {
  const proc = await startApiProcess(env, args);
  return { proc, url: proc.url };
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

/**
 * The mock gateway behind a fault proxy, and order and payment workers that reach it only
 * through the proxy: the scenarios in which the provider (or the path to it) misbehaves.
 */
export interface ProxiedPayments {
  /** The gateway itself, for the ledger and for reconcile going around the proxy. */
  gatewayUrl: string;
  proxy: FaultProxy;
  stop(): Promise<void>;
}

export async function startProxiedPayments(
  env: Record<string, string>,
  options: { seed: number; proxyMode?: FaultMode; paymentArgs: string[] },
): Promise<ProxiedPayments> {
  const gateway = await startGateway(env, options.seed);
  const proxy = await startFaultProxy(
    '127.0.0.1',
    Number(new URL(gateway.url).port),
    options.proxyMode,
  );
  const through = { ...env, FSALE_GATEWAY_URL: proxy.url };
  const orders = startCli(['work', 'orders'], through);
  const payments = startCli(['work', 'payments', ...options.paymentArgs], through);
  return {
    gatewayUrl: gateway.url,
    proxy,
    async stop() {
      await stopProcess(payments);
      await stopProcess(orders);
      await proxy.close();
      await stopProcess(gateway.proc);
    },
  };
}

/**
 * The whole stack for `fsale flood` tests: an in-process API, the in-process mock gateway with
 * the given model, order and payment workers as processes, and a scratch directory for reports.
 */
export interface FloodStack {
  api: RunningApi;
  /** The test's environment pointing at this stack's gateway. */
  env: Record<string, string>;
  dir: string;
  stop(): Promise<void>;
}

export async function startFloodStack(
  s: TestServices,
  gateway: { seed: number; rates: OutcomeRates },
): Promise<FloodStack> {
  const api = await startApi(s);
  const app = buildGateway({ seed: gateway.seed, speed: 100, rates: gateway.rates });
  const env = { ...s.env, FSALE_GATEWAY_URL: await listenGateway(app, '127.0.0.1', 0) };
  const workers = [
    startCli(['work', 'orders', '--json'], env),
    startCli(['work', 'payments', '--json'], env),
  ];
  const dir = await mkdtemp(join(tmpdir(), 'fsale-flood-'));
  return {
    api,
    env,
    dir,
    async stop() {
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A status record of a worker (`work orders --json`, ...): a log record with an `event`. */
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
    const record = parseRecord(text);
    if (typeof record?.event === 'string') lines.push({ ...record, event: record.event });
  });
  const last = (event?: string) =>
    [...lines].reverse().find((l) => event === undefined || l.event === event);
  return { proc, lines, last };
}

/**
 * Resolves once the worker has printed its started record (its signal handlers are installed
 * then, so a SIGTERM from now on is a clean stop); throws with its output if it exits first.
 */
export async function waitStarted(w: Worker, what = 'the worker'): Promise<void> {
  await until(
    `${what} to start`,
    () => {
      if (w.proc.child.exitCode !== null || w.proc.child.signalCode !== null) {
        throw new Error(`${what} exited before it started: ${w.proc.output()}`);
      }
      return w.last('started') !== undefined;
    },
    60_000,
    10,
  );
}

export function startOrderWorker(env: Record<string, string>, args: string[] = []): Worker {
  return worker(['work', 'orders', '--json', '--status-interval', '200ms', ...args], env);
}

export function startPaymentWorker(env: Record<string, string>, args: string[] = []): Worker {
  return worker(['work', 'payments', '--json', '--status-interval', '200ms', ...args], env);
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

/**
 * The flood passed, or a loaded machine limited the generator (inconclusive, exit 4, for that
 * reason only): never a failed threshold or invariant.
 */
export function expectPassedUnlessLimited(code: number | null, summary: FloodSummary): void {
  const { verdict } = summary;
  if (verdict.status === 'inconclusive') {
    expect(code).toBe(4);
    expect(
      verdict.reasons.every((r) => r.startsWith('generator limited')),
      verdict.reasons.join('; '),
    ).toBe(true);
    return;
  }
  expect(code, JSON.stringify(verdict)).toBe(0);
}
