// A TCP fault proxy between a component and its server (node:net), switchable at runtime:
//   pass       forwards bytes both ways
//   latency    forwards, each chunk delayed by `ms` (order kept)
//   blackhole  accepts connections and bytes, never answers (a hung provider)
//   reset      destroys every connection as soon as it is accepted (ECONNRESET)
//   http       answers every request itself with `status` (e.g. 503 or 429 storms) and closes
//   hold       store and forward, like an egress queue: what a client sends reaches the server
//              `ms` later (or when `deliverHeld()` is called), even if the client gave up and
//              hung up meanwhile
// Switching mode drops the connections opened under the previous one (except between two
// forwarding modes, or between two `http` modes), so a client's keep-alive pool cannot keep
// using a connection the new mode would have treated differently. `cut` and
// `restore` stop and start listening altogether (connection refused), as test/workers needed.
import { connect, createServer, type Server, type Socket } from 'node:net';

export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'latency'; ms: number }
  | { kind: 'blackhole' }
  | { kind: 'reset' }
  | { kind: 'http'; status: number; retryAfterSeconds?: number }
  | { kind: 'hold'; ms?: number };

export interface FaultStats {
  /** Connections accepted, per mode they were accepted under. */
  accepted: Record<FaultMode['kind'], number>;
  /** Requests answered by the proxy itself in `http` mode. */
  answered: number;
  /** Connections held in `hold` mode, then delivered to the server (empty ones are not). */
  delivered: number;
}

export interface FaultProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly mode: FaultMode;
  readonly stats: FaultStats;
  setMode(mode: FaultMode): void;
  /** `hold` mode: delivers every request held so far now. */
  deliverHeld(): void;
  /** Drops every connection and refuses new ones until `restore`. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

function httpAnswer(status: number, retryAfterSeconds: number | undefined): string {
  const body = JSON.stringify({ error: `fault proxy answered ${status}` });
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
    'content-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    (retryAfterSeconds === undefined ? '' : `retry-after: ${retryAfterSeconds}\r\n`) +
    'connection: close\r\n\r\n' +
    body
  );
}

export async function startFaultProxy(
  targetHost: string,
  targetPort: number,
  initial: FaultMode = { kind: 'pass' },
): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  /** `hold` mode: deliveries not yet made, and upstream connections of deliveries made. */
  const pendingDeliveries = new Set<() => void>();
  const heldUpstreams = new Set<Socket>();
  let mode: FaultMode = initial;
  let server: Server | undefined;
  let port = 0;
  const stats: FaultStats = {
    accepted: { pass: 0, latency: 0, blackhole: 0, reset: 0, http: 0, hold: 0 },
    answered: 0,
    delivered: 0,
  };

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };

  /** Forwards `from` to `to`, each chunk held back by the current latency (0 in pass mode). */
  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      const delay = mode.kind === 'latency' ? mode.ms : 0;
      // Same delay for every chunk of a connection: timers fire in order, bytes stay in order.
      if (delay === 0) to.write(chunk);
      else setTimeout(() => to.destroyed || to.write(chunk), delay);
    });
  };

  const onConnection = (client: Socket) => {
    track(client);
    const current = mode;
    stats.accepted[current.kind] += 1;
    switch (current.kind) {
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'blackhole':
        client.resume(); // read and discard; never answer
        return;
      case 'http': {
        let head = '';
        client.on('data', (chunk: Buffer) => {
          head += chunk.toString('latin1');
          if (!head.includes('\r\n\r\n') || client.writableEnded) return;
          stats.answered += 1;
          client.end(httpAnswer(current.status, current.retryAfterSeconds));
        });
        return;
      }
      case 'hold': {
        // Everything the client sends is held, then delivered on one upstream connection that
        // outlives the client: the server hears the request whether or not anyone still waits.
        const held: Buffer[] = [];
        let upstream: Socket | undefined;
        client.on('data', (chunk: Buffer) => {
          if (upstream !== undefined) upstream.write(chunk);
          else held.push(chunk);
        });
        const deliver = () => {
          pendingDeliveries.delete(deliver);
          // A connection opened and closed without a byte (a client's spare) carries nothing.
          if (held.length === 0 && client.destroyed) return;
          const to = connect({ host: targetHost, port: targetPort }, () => {
            stats.delivered += 1;
          });
          upstream = to;
          // Not in `sockets`: a mode switch must not drop what the queue already sends.
          heldUpstreams.add(to);
          to.on('close', () => heldUpstreams.delete(to));
          to.on('error', () => undefined);
          for (const chunk of held.splice(0)) to.write(chunk);
          to.on('data', (chunk: Buffer) => client.destroyed || client.write(chunk));
          to.on('close', () => client.destroy());
          // The server's answer ends the connection; a server that keeps it alive gets 5 s.
          to.setTimeout(5_000, () => to.destroy());
        };
        pendingDeliveries.add(deliver);
        if (current.ms !== undefined)
          setTimeout(() => pendingDeliveries.has(deliver) && deliver(), current.ms);
        return;
      }
      default: {
        const upstream = connect({ host: targetHost, port: targetPort });
        track(upstream);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        forward(client, upstream);
        forward(upstream, client);
      }
    }
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(onConnection);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        const address = s.address();
        if (address !== null && typeof address === 'object') port = address.port;
        server = s;
        resolve();
      });
    });
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  const stop = () =>
    new Promise<void>((resolve) => {
      dropAll();
      pendingDeliveries.clear();
      for (const socket of heldUpstreams) socket.destroy();
      if (server === undefined) resolve();
      else server.close(() => resolve());
      server = undefined;
    });

  await listen();
  return {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get mode() {
      return mode;
    },
    stats,
    setMode(next: FaultMode) {
      // Kept across a switch: forwarding connections between forwarding modes, and connections
      // the proxy answers itself between `http` modes (it closes each one after its answer, so
      // none is reused; dropping one mid-request would turn a storm's retryable answer into a
      // reset, which is the next scenario's fault, not this one's).
      const forwarding = (m: FaultMode) => m.kind === 'pass' || m.kind === 'latency';
      const keep =
        (forwarding(mode) && forwarding(next)) || (mode.kind === 'http' && next.kind === 'http');
      mode = next;
      if (!keep) dropAll();
    },
    deliverHeld() {
      for (const deliver of [...pendingDeliveries]) deliver();
    },
    cut: stop,
    restore: listen,
    close: stop,
  };
}

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: FaultProxy): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(proxy.port);
  return parsed.toString();
}
