// The admin listener: a small HTTP server, apart from the public port, for what only the
// operator's own tooling should see (Prometheus metrics, detailed readiness with the real
// connection errors, liveness). It binds to loopback unless told otherwise, so a process that
// is reachable from the internet does not publish its internals by accident. Any long-running
// command can start one with the routes it has: `fsale serve`, the workers, reconcile and the
// gateway.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { UsageError } from '../domain/errors.js';

export interface AdminAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** Paths (exact, no query) to what they answer; only GET and HEAD are served. */
export type AdminRoutes = Readonly<Record<string, () => Promise<AdminAnswer>>>;

export interface AdminListenerOptions {
  host: string;
  /** 0 picks a free port (the URL says which). */
  port: number;
  routes: AdminRoutes;
}

export interface AdminListener {
  url: string;
  close(): Promise<void>;
}

export const DEFAULT_ADMIN_HOST = '127.0.0.1';

export function jsonAnswer(status: number, value: unknown): AdminAnswer {
  return { status, contentType: 'application/json; charset=utf-8', body: JSON.stringify(value) };
}

/** GET /metrics from a prom-client registry (its own, or a cluster aggregate). */
export async function metricsAnswer(registry: {
  contentType: string;
  metrics: () => Promise<string>;
}): Promise<AdminAnswer> {
  return { status: 200, contentType: registry.contentType, body: await registry.metrics() };
}

/** A worker loop's liveness: stuck once it has gone `stuckAfterMs` without progress. */
export interface Liveness {
  sinceProgressMs: () => number;
  stuckAfterMs: number;
}

/**
 * The admin routes of a process with nothing to check beyond itself (the workers, reconcile,
 * the gateway): GET /metrics from its registry, and GET /healthz. It is 200 while the process
 * answers and, with `liveness`, while the worker makes progress (WorkerRuntime.sinceProgressMs);
 * 503 `stuck` once it has gone `stuckAfterMs` without any, e.g. awaiting a query on a
 * connection that a network partition left silent, so that a liveness probe restarts it.
 */
export function metricsAndHealthRoutes(
  registry: { contentType: string; metrics: () => Promise<string> },
  liveness?: Liveness,
): AdminRoutes {
  return {
    '/metrics': () => metricsAnswer(registry),
    '/healthz': async () => {
      const since = liveness?.sinceProgressMs() ?? 0;
      if (liveness === undefined || since < liveness.stuckAfterMs)
        return jsonAnswer(200, { status: 'ok' });
      return jsonAnswer(503, {
        status: 'stuck',
        sinceProgressSeconds: Math.round(since / 1000),
        stuckAfterSeconds: liveness.stuckAfterMs / 1000,
      });
    },
  };
}

/** Host and port as a URL, with IPv6 hosts bracketed. */
export function listenerUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function answer(routes: AdminRoutes, req: IncomingMessage, res: ServerResponse) {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
  let reply: AdminAnswer;
  if (route === undefined) reply = jsonAnswer(404, { error: 'not_found', path });
  else if (req.method !== 'GET' && req.method !== 'HEAD')
    reply = jsonAnswer(405, { error: 'method_not_allowed' });
  else {
    try {
      reply = await route();
    } catch {
      // A route's own failure (a metric collector that threw): no stack on the wire.
      reply = jsonAnswer(500, { error: 'internal' });
    }
  }
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

/** Starts the admin listener; a port already taken is a UsageError (exit 2), not a crash. */
export function startAdminListener(options: AdminListenerOptions): Promise<AdminListener> {
  const server = createServer((req, res) => void answer(options.routes, req, res));
  // Scrapers and probes send small requests quickly; nothing here needs a slow client.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const where = listenerUrl(options.host, options.port);
      reject(
        new UsageError(
          error.code === 'EADDRINUSE'
            ? `--admin-port: ${where} is already in use`
            : `--admin-port: cannot listen on ${where}: ${error.message}`,
        ),
      );
    });
    server.listen({ host: options.host, port: options.port }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : options.port;
      resolve({
        url: listenerUrl(options.host, port),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
