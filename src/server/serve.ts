import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import {
  jsonAnswer,
  listenerUrl,
  metricsAnswer,
  startAdminListener,
  type AdminListener,
} from './admin.js';
import { describe, UsageError } from '../domain/errors.js';
import { buildApp, type App, type AppOptions } from './app.js';
import { apiAdminRoutes, checkReadiness, type Readiness } from './routes/health.js';

export interface ServeOptions extends AppOptions {
  host: string;
  port: number;
  /** Processes sharing the port (node:cluster); 1 runs the API in this process. */
  workers: number;
  /** Where /metrics, /readyz and /healthz are served for the operator; none when absent. */
  admin?: { host: string; port: number } | undefined;
}

export interface ServeEvents {
  listening(url: string, workers: number): void;
  adminListening(url: string): void;
  stopping(signal: string): void;
  workerExited(pid: number, code: number | null, signal: string | null, restarting: boolean): void;
}

/**
 * Whether binding `host` keeps the port to this machine. Anything else (0.0.0.0, ::, a LAN
 * address, a name that may resolve anywhere) counts as reachable by others.
 */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** Starts the API in this process; resolves once it listens. SIGTERM/SIGINT close it gracefully. */
export async function serveSingle(
  options: ServeOptions,
  events?: Partial<ServeEvents>,
): Promise<App> {
  // Listen for the stop signal before starting: a cluster worker forked just before the
  // primary is told to stop gets its SIGTERM while it connects to Redis and PostgreSQL. The
  // request is honoured once the app exists.
  let requested: string | undefined;
  let shutdown = (signal: string) => {
    requested ??= signal;
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  const app = await buildApp(options);
  // Under --api-workers the primary owns the admin port and asks the workers (see servePrimary):
  // N processes cannot share one admin port, and a scrape must see all of them.
  let admin: AdminListener | undefined;
  if (cluster.isWorker) answerPrimary(app);
  else if (options.admin !== undefined) {
    admin = await startAdminListener({ ...options.admin, routes: apiAdminRoutes(app.api) }).catch(
      async (error: unknown) => {
        await app.close();
        throw error;
      },
    );
    events?.adminListening?.(admin.url);
  }
  await app.listen({ host: options.host, port: options.port }).catch(async (error: unknown) => {
    await Promise.all([app.close(), admin?.close()]);
    throw cannotListen(options, error);
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const url = listenerUrl(options.host, port);
  let closing = false;
  shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    events?.stopping?.(signal);
    // Stop accepting, let in-flight requests finish, close idle keep-alive sockets, then the
    // Redis and PostgreSQL clients (onClose hooks).
    void Promise.all([app.close(), admin?.close()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  if (cluster.isWorker) process.send?.({ type: 'listening', url });
  else events?.listening?.(url, 1);
  if (requested !== undefined) shutdown(requested);
  return app;
}

/**
 * The cluster primary: forks `workers` API processes sharing one port. A worker that dies
 * unexpectedly is reported and replaced; on SIGTERM/SIGINT every worker shuts down gracefully
 * and the primary exits once all have.
 */
export async function servePrimary(
  options: ServeOptions,
  events?: Partial<ServeEvents>,
): Promise<void> {
  // The workers bind through the primary; one that cannot would die and be replaced forever,
  // so a port already taken is found here, once, and is the same one-line error as unclustered.
  if (options.port !== 0) await probeListen(options);
  const admin =
    options.admin === undefined
      ? undefined
      : await startAdminListener({ ...options.admin, routes: clusterAdminRoutes() });
  if (admin !== undefined) events?.adminListening?.(admin.url);
  await new Promise<void>((resolve) => {
    let stopping = false;
    let ready = 0;
    // Our own count: cluster.workers drops a worker only once it has both exited and
    // disconnected, and under load 'exit' can come first, so it may still list the last one.
    const live = new Set<number>();
    const fork = () => {
      const worker = cluster.fork();
      live.add(worker.id);
      worker.on('message', (message: { type?: string; url?: string }) => {
        if (message.type === 'listening' && message.url !== undefined) {
          ready += 1;
          if (ready === options.workers) events?.listening?.(message.url, options.workers);
        }
      });
    };
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker.id);
      const restarting = !stopping;
      events?.workerExited?.(worker.process.pid ?? -1, code, signal, restarting);
      if (restarting) fork();
      else if (live.size === 0) resolve();
    });
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      events?.stopping?.(signal);
      // A signal, not an IPC message: a worker forked a moment ago may still be loading its
      // modules, with no 'message' listener yet (the message would be lost and the worker
      // would serve forever). One that is still starting has nothing in flight; one that
      // listens finishes its requests (see serveSingle).
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker !== undefined && !worker.isDead()) worker.process.kill('SIGTERM');
      }
      if (live.size === 0) resolve();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    for (let i = 0; i < options.workers; i++) fork();
  });
  await admin?.close();
}

const READINESS = 'fsale:readiness';
/** How long the primary waits for a worker's readiness before counting it not ready. */
const WORKER_ANSWER_MS = 3_000;

interface ReadinessMessage {
  type: typeof READINESS;
  requestId: number;
  readiness?: Readiness;
}

function isReadinessMessage(message: unknown): message is ReadinessMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === READINESS
  );
}

/** A cluster worker: answers the primary's readiness and metrics questions over IPC. */
function answerPrimary(app: App): void {
  // prom-client's cluster protocol: the primary's AggregatorRegistry asks, this answers.
  AggregatorRegistry.setRegistries([app.api.metrics.registry]);
  new AggregatorRegistry();
  process.on('message', (message: unknown) => {
    if (!isReadinessMessage(message)) return;
    void checkReadiness(app.api).then((readiness) =>
      process.send?.({ type: READINESS, requestId: message.requestId, readiness }),
    );
  });
}

/**
 * The primary's admin routes: metrics summed over the workers (prom-client's aggregation), and
 * ready only when every worker says it is.
 */
function clusterAdminRoutes() {
  const aggregator = new AggregatorRegistry();
  let nextRequest = 0;
  const askWorkers = async () => {
    const workers = Object.values(cluster.workers ?? {}).filter(
      (worker): worker is Worker => worker !== undefined && worker.isConnected(),
    );
    const requestId = nextRequest++;
    return Promise.all(
      workers.map(
        (worker) =>
          new Promise<{ pid: number; ready: boolean; checks: Readiness['checks'] | 'no answer' }>(
            (resolve) => {
              const pid = worker.process.pid ?? -1;
              const timer = setTimeout(() => {
                worker.off('message', onMessage);
                resolve({ pid, ready: false, checks: 'no answer' });
              }, WORKER_ANSWER_MS);
              const onMessage = (message: unknown) => {
                if (!isReadinessMessage(message) || message.requestId !== requestId) return;
                if (message.readiness === undefined) return;
                clearTimeout(timer);
                worker.off('message', onMessage);
                resolve({ pid, ...message.readiness });
              };
              worker.on('message', onMessage);
              worker.send({ type: READINESS, requestId });
            },
          ),
      ),
    );
  };
  return {
    '/healthz': async () =>
      jsonAnswer(200, { status: 'ok', workers: Object.keys(cluster.workers ?? {}).length }),
    '/readyz': async () => {
      const workers = await askWorkers();
      const ready = workers.length > 0 && workers.every((w) => w.ready);
      return jsonAnswer(ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', workers });
    },
    '/metrics': () =>
      metricsAnswer({
        contentType: aggregator.contentType,
        metrics: () => aggregator.clusterMetrics(),
      }),
  };
}

/** A port that cannot be bound (taken, privileged) is the operator's to fix: exit 2, one line. */
function cannotListen(options: ServeOptions, error: unknown): UsageError {
  return new UsageError(`cannot listen on ${options.host}:${options.port}: ${describe(error)}`);
}

async function probeListen(options: ServeOptions): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port, exclusive: true }, resolve);
  }).catch((error: unknown) => {
    throw cannotListen(options, error);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
