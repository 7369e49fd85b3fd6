import cluster from 'node:cluster';
import { buildApp, type App, type AppOptions } from './app.js';

export interface ServeOptions extends AppOptions {
  host: string;
  port: number;
  /** Processes sharing the port (node:cluster); 1 runs the API in this process. */
  workers: number;
}

export interface ServeEvents {
  listening(url: string, workers: number): void;
  stopping(signal: string): void;
  workerExited(pid: number, code: number | null, signal: string | null, restarting: boolean): void;
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
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  let closing = false;
  shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    events?.stopping?.(signal);
    // Stop accepting, let in-flight requests finish, close idle keep-alive sockets, then the
    // Redis and PostgreSQL clients (onClose hooks).
    void app.close().then(
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
export function servePrimary(options: ServeOptions, events?: Partial<ServeEvents>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    let ready = 0;
    const fork = () => {
      const worker = cluster.fork();
      worker.on('message', (message: { type?: string; url?: string }) => {
        if (message.type === 'listening' && message.url !== undefined) {
          ready += 1;
          if (ready === options.workers) events?.listening?.(message.url, options.workers);
        }
      });
    };
    cluster.on('exit', (worker, code, signal) => {
      const restarting = !stopping;
      events?.workerExited?.(worker.process.pid ?? -1, code, signal, restarting);
      if (restarting) fork();
      else if (Object.keys(cluster.workers ?? {}).length === 0) resolve();
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
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    for (let i = 0; i < options.workers; i++) fork();
  });
}
