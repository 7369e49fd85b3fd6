// Abusive clients for scenario 11 and bench/abuse.ts: SSE clients that never read, Slowloris
// request heads, oversized bodies. No test framework in here, so the benchmark can use it too.
import { execFileSync, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';

function hostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

export interface StalledSseClients {
  /** Local ports of the clients' sockets (the server sees them as peer ports). */
  ports: Set<number>;
  /** Status lines the server answered with, one per client. */
  statusLines: string[];
  /** Reads every stream to its end; resolves with how many the server had ended. */
  drain(timeoutMs: number): Promise<number>;
  destroy(): void;
}

// Node cannot shrink a TCP socket's receive buffer, and with the default one (autotuned up to
// megabytes) a stalled stream takes minutes to fill it. Python can (SO_RCVBUF before connect):
// 200 sockets with ~2 KiB buffers stall within a second or two of events.
const STALLED_CLIENTS_PY = `
import socket, sys, select, time
host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
socks = []
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect((host, port))
    s.sendall(('GET %s HTTP/1.1\\r\\nHost: %s\\r\\nAccept: text/event-stream\\r\\n\\r\\n' % (path, host)).encode())
    s.settimeout(30)
    head = s.recv(15).decode('latin1')
    print('open %d %s' % (s.getsockname()[1], head.split('\\r\\n')[0]), flush=True)
    socks.append(s)
print('ready', flush=True)
sys.stdin.readline()
deadline = time.time() + float(sys.argv[5])
live = list(socks)
for s in live: s.setblocking(False)
ended = 0
while live and time.time() < deadline:
    readable, _, _ = select.select(live, [], [], 0.5)
    for s in readable:
        try:
            data = s.recv(65536)
        except OSError:
            data = b''
        if not data:
            ended += 1
            live.remove(s)
            s.close()
print('ended %d' % ended, flush=True)
`;

/**
 * Opens `count` streams of `path` on sockets with tiny receive buffers and never reads them
 * (a Python child holds them): the server's socket stops draining almost at once.
 */
export async function openStalledSseClients(
  url: string,
  path: string,
  count: number,
  drainTimeoutMs = 60_000,
): Promise<StalledSseClients> {
  const { host, port } = hostPort(url);
  const child = spawn(
    'python3',
    [
      '-c',
      STALLED_CLIENTS_PY,
      host,
      String(port),
      path,
      String(count),
      String(drainTimeoutMs / 1000),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const ports = new Set<number>();
  const statusLines: string[] = [];
  // One listener for the child's whole life: a chunk that arrives between two waits (the
  // newline after "ready", say) must still land in `out`, or the next line no longer starts one.
  let out = '';
  const seen = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const check of seen) check();
  });
  const waitFor = (pattern: RegExp, timeoutMs: number) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        seen.delete(check);
        child.off('close', onClose);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `stalled SSE clients: no ${pattern} within ${timeoutMs} ms: ${out.slice(-300)}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        const match = pattern.exec(out);
        if (match === null) return;
        done();
        resolve(match);
      };
      // 'close', not 'exit': by then every byte the child wrote has been read.
      const onClose = (code: number | null) => {
        done();
        reject(new Error(`stalled SSE clients exited (${code}): ${out}`));
      };
      seen.add(check);
      child.once('close', onClose);
      check();
    });
  await waitFor(/^ready$/m, 120_000);
  for (const match of out.matchAll(/^open (\d+) (.*)$/gm)) {
    ports.add(Number(match[1]));
    statusLines.push(match[2] ?? '');
  }
  return {
    ports,
    statusLines,
    drain: async (timeoutMs) => {
      child.stdin.write('read\n');
      const match = await waitFor(/^ended (\d+)$/m, timeoutMs + 10_000);
      return Number(match[1]);
    },
    destroy: () => {
      child.kill('SIGKILL');
    },
  };
}

export interface Slowloris {
  /** Sockets the server has closed. */
  closed(): number;
  /** What the server sent before closing (a 408, usually), per closed socket. */
  answers: string[];
  stop(): void;
}

/** `count` connections that send a request head one byte every `everyMs`, never finishing. */
export function startSlowloris(url: string, count: number, everyMs: number): Slowloris {
  const { host, port } = hostPort(url);
  const sockets: Socket[] = [];
  const answers: string[] = [];
  let closed = 0;
  const header = 'X-Slow: ' + 'a'.repeat(10_000);
  for (let i = 0; i < count; i++) {
    const socket = connect({ host, port });
    sockets.push(socket);
    let received = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.once('connect', () => {
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(header[sent++ % header.length] ?? 'a');
      }, everyMs);
    });
    socket.once('close', () => {
      clearInterval(timer);
      closed += 1;
      answers.push(received.split('\r\n')[0] ?? '');
    });
  }
  return {
    closed: () => closed,
    answers,
    stop: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * One POST with a body far above the API's limit: `declared` sends only a head declaring
 * Content-Length `bytes` (and waits); otherwise `bytes` of body are streamed, chunked. Resolves with the status, or -1 when the server cut the
 * connection while the body was still coming (it stopped reading: also a refusal).
 */
export function sendOversized(
  url: string,
  headers: Record<string, string>,
  bytes: number,
  declared: boolean,
): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(
      new URL('/order/buy', url),
      {
        method: 'POST',
        agent: false,
        headers: {
          ...headers,
          'content-type': 'application/json',
          ...(declared ? { 'content-length': String(bytes) } : {}),
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve(error.code === 'ECONNRESET' || error.code === 'EPIPE' ? -1 : 0),
    );
    const chunk = Buffer.alloc(16_384, 0x20);
    let written = 0;
    const pump = () => {
      while (written < bytes && !req.destroyed) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!req.destroyed) req.end();
    };
    if (declared) {
      // Only the head: the declared size alone must be enough for the server to refuse.
      req.flushHeaders();
      return;
    }
    req.write('{"productId":"');
    pump();
  });
}

/**
 * Peer ports of the TCP connections on `port` that process `pid` still holds open (any state).
 * A socket the process has closed may linger in the kernel (FIN-WAIT, unsent data) with no
 * owner: it no longer costs the process anything, so it is not listed.
 */
export function heldPeers(port: number, pid: number): Set<number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'all', `( sport = :${port} )`], {
    encoding: 'utf8',
  });
  const peers = new Set<number>();
  for (const line of out.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const peer = line.trim().split(/\s+/)[4];
    if (peer !== undefined) peers.add(Number(peer.slice(peer.lastIndexOf(':') + 1)));
  }
  return peers;
}
