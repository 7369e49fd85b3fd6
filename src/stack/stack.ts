import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ensureDatabase, migrate } from '../db/migrate.js';
import { claimDatabaseForStack, type DatabaseClaim } from '../db/stack-lock.js';
import { UsageError } from '../domain/errors.js';
import { resolveServices, type ResolvedServices } from './services.js';

const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export interface StackOptions {
  redisUrl: string;
  databaseUrl: string;
  keyPrefix: string;
  jwtSecret: string | undefined;
  dataDir: string;
  port: number;
  gatewayPort: number;
  gatewaySpeed: number;
  gatewaySeed?: number | undefined;
  apiWorkers: number;
  orderWorkers: number;
  paymentWorkers: number;
  demoAuth: boolean;
  /** Start a private local Redis Cluster (3 masters + 3 replicas) instead of using REDIS_URL. */
  redisCluster?: boolean | undefined;
  /**
   * Run every child at this nice level (0: as this process). `fsale demo` lowers the stack's
   * priority below its load generator's: a crowd has machines of its own, and a generator
   * starved by the server it drives measures its own delay instead of the server's.
   */
  niceness?: number | undefined;
  /**
   * Aborted (a signal, see stopOnSignal) while starting: everything started so far is stopped
   * and startStack rejects. Once it has resolved, stopping is the caller's (Stack.stop).
   */
  signal?: AbortSignal | undefined;
  /** Every line a child prints, prefixed with its name. */
  onLine: (name: string, line: string) => void;
  /** Stack news: services started, processes up, a process that died. */
  onNotice: (message: string) => void;
}

export interface Stack {
  apiUrl: string;
  gatewayUrl: string;
  /** The environment every child runs with (REDIS_URL, DATABASE_URL, ...). */
  env: Record<string, string>;
  processes: { name: string; pid: number }[];
  /** Resolves when a child exits by itself (a crash): the stack is then being stopped. */
  failed: Promise<string>;
  /** SIGTERM to the API first (no new buys), then workers, then the gateway, then private servers. */
  stop(): Promise<void>;
}

interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<void>;
}

/** The JWT secret from the environment, else one kept in `<dataDir>/jwt-secret` (made once). */
async function jwtSecret(
  given: string | undefined,
  dataDir: string,
  notice: (m: string) => void,
): Promise<string> {
  if (given !== undefined) return given;
  const file = join(dataDir, 'jwt-secret');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const secret = randomBytes(32).toString('hex');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  notice(
    `FSALE_JWT_SECRET not set: generated one in ${file} (export FSALE_JWT_SECRET=$(cat ${file}) to mint tokens)`,
  );
  return secret;
}

/** Aborted by the first SIGINT or SIGTERM this process gets. */
export function stopOnSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}

/** How long a child may take to say it is up (listening, or its started record). */
const START_TIMEOUT_MS = 60_000;

/**
 * The children's log level: the one asked for when it is more verbose than info, else info,
 * since readiness is read from their info records (listening, started).
 */
function childLogLevel(asked: string | undefined): string {
  return asked === 'debug' || asked === 'trace' ? asked : 'info';
}

/** Starts migrate, gateway, API, order and payment workers and reconcile as child processes. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const services: ResolvedServices = await resolveServices(
    options.redisUrl,
    options.databaseUrl,
    options.dataDir,
    { redisCluster: options.redisCluster === true },
  );
  for (const note of services.notes) options.onNotice(note);
  const children: Child[] = [];
  let reportFailure: (name: string) => void = () => undefined;
  const failed = new Promise<string>((resolve) => (reportFailure = resolve));
  let claim: DatabaseClaim | undefined;
  const nice = options.niceness ?? 0;

  // Once, however many callers (a signal, a crashed child, the caller's stop) ask for it.
  let stopped: Promise<void> | undefined;
  const stopping = () => stopped !== undefined;
  const stopAll = () =>
    (stopped ??= (async () => {
      // Order matters: stop taking buys, then drain workers, then the gateway they call.
      for (const group of [['api'], ['orders', 'payments', 'reconcile'], ['gateway']]) {
        const members = children.filter((c) => group.some((g) => c.name.startsWith(g)));
        for (const c of members)
          if (c.process.exitCode === null && c.process.signalCode === null)
            c.process.kill('SIGTERM');
        await Promise.all(members.map((c) => c.exited));
      }
      await claim?.release();
      await services.stop();
    })());

  const onAbort = () => void stopAll();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const secret = await jwtSecret(options.jwtSecret, options.dataDir, options.onNotice);
    // Claimed before migrating: a stack refused here must not change another's schema.
    await ensureDatabase(services.databaseUrl);
    claim = await claimDatabaseForStack(services.databaseUrl);
    const result = await migrate(services.databaseUrl);
    if (result.applied.length > 0)
      options.onNotice(`migrated ${result.database}: ${result.applied.join(', ')}`);
    const env: Record<string, string> = {
      ...Object.fromEntries(
        Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
      ),
      REDIS_URL: services.redisUrl,
      DATABASE_URL: services.databaseUrl,
      FSALE_KEY_PREFIX: options.keyPrefix,
      FSALE_JWT_SECRET: secret,
      LOG_LEVEL: childLogLevel(process.env.LOG_LEVEL),
    };

    const start = (name: string, args: string[], childEnv: Record<string, string>): Child => {
      // Nothing new once stopping (a signal while starting): stopAll may be past its group.
      if (stopping()) throw new Error(`not starting ${name}: the stack is stopping`);
      const command = [process.execPath, RUN_JS, ...args];
      // Through nice(1), so that every thread of the child (and the API's cluster workers it
      // forks) starts at that level: setpriority() after the fact misses the threads.
      const niced = nice === 0 ? command : ['nice', '-n', String(nice), ...command];
      const child = spawn(niced[0] ?? '', niced.slice(1), {
        env: childEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => options.onLine(name, line));
      }
      const exited = new Promise<void>((resolve) =>
        child.once('exit', (code, signal) => {
          if (!stopping()) {
            // Never restarted silently: a dead component stops the whole stack, loudly.
            options.onNotice(
              `${name} (pid ${child.pid ?? '?'}) exited unexpectedly (code ${code}, signal ${signal}); stopping everything`,
            );
            reportFailure(name);
            void stopAll();
          }
          resolve();
        }),
      );
      const entry = { name, process: child, exited };
      children.push(entry);
      return entry;
    };
    /** Resolves with the first capture of `pattern` in the child's stdout. */
    const printed = (child: Child, pattern: RegExp, what: string) =>
      new Promise<string>((resolve, reject) => {
        const lines = createInterface({ input: child.process.stdout ?? process.stdin });
        const timer = setTimeout(
          () =>
            reject(
              new Error(`${child.name} did not say ${what} within ${START_TIMEOUT_MS / 1000} s`),
            ),
          START_TIMEOUT_MS,
        );
        lines.on('line', (line) => {
          const match = pattern.exec(line);
          if (match === null) return;
          clearTimeout(timer);
          resolve(match[1] ?? '');
        });
        void child.exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`${child.name} exited before ${what}`));
        });
      });
    const listening = (child: Child) =>
      printed(child, /listening on (http:\/\/[^\s,)]+)/, 'listening');
    // A worker is up once it logs its started record (its JSON line has "event":"started").
    const started = (child: Child) => printed(child, /("event":"started")/, 'it had started');

    const gatewayArgs = [
      'gateway',
      '--port',
      String(options.gatewayPort),
      '--speed',
      String(options.gatewaySpeed),
    ];
    if (options.gatewaySeed !== undefined) gatewayArgs.push('--seed', String(options.gatewaySeed));
    const gatewayUrl = await listening(start('gateway', gatewayArgs, env));
    env.FSALE_GATEWAY_URL = gatewayUrl;

    const apiArgs = [
      'serve',
      '--port',
      String(options.port),
      '--api-workers',
      String(options.apiWorkers),
    ];
    if (options.demoAuth) apiArgs.push('--demo-auth');
    const apiUrl = await listening(start('api', apiArgs, env));
    const workers: Child[] = [];
    for (let i = 1; i <= options.orderWorkers; i++)
      workers.push(
        start(`orders-${i}`, ['work', 'orders', '--json', '--status-interval', '5s'], env),
      );
    for (let i = 1; i <= options.paymentWorkers; i++)
      workers.push(
        start(`payments-${i}`, ['work', 'payments', '--json', '--status-interval', '5s'], env),
      );
    workers.push(start('reconcile', ['reconcile', '--interval', '5s', '--json'], env));
    // Ready means every process is: a sale (or demo's calibration) started while the workers
    // still boot would share the cores with their start-up and measure that.
    await Promise.all(workers.map(started));
    if (options.signal?.aborted === true) throw new Error('aborted');

    return {
      apiUrl,
      gatewayUrl,
      env,
      processes: children.map((c) => ({ name: c.name, pid: c.process.pid ?? -1 })),
      failed,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    if (options.signal?.aborted === true)
      throw new UsageError('stopped while starting (a signal): nothing it started is left running');
    throw error;
  } finally {
    // Once started (or failed), stopping is the caller's.
    options.signal?.removeEventListener('abort', onAbort);
  }
}
