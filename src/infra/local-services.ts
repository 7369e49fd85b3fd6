// Private redis-server and postgres processes, for machines without the services (tests,
// `fsale up`). Each runs in the foreground as our child, on a port we chose, with its data
// in a directory we own, so stopping it never touches anything we did not start.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalService {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago (the kernel picked it). */
export async function freePort(): Promise<number> {
  return listenOnce(0);
}

/** Whether `port` on loopback can be bound now. */
export async function isFree(port: number): Promise<boolean> {
  return listenOnce(port).then(
    () => true,
    () => false,
  );
}

/** Binds `port` (0: any) on loopback, closes it again, and says which port it was. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** Whether something accepts TCP connections at the host and port of `url`. */
export async function isListening(url: string, timeoutMs = 1_000): Promise<boolean> {
  const parsed = new URL(url);
  const port = Number(parsed.port || (parsed.protocol.startsWith('redis') ? 6379 : 5432));
  return new Promise((resolve) => {
    const socket = connect({ host: parsed.hostname, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Finds a server binary on PATH or in Debian's versioned PostgreSQL directories. */
export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  const pgRoot = '/usr/lib/postgresql';
  if (existsSync(pgRoot)) {
    const versions = readdirSync(pgRoot).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const candidate = join(pgRoot, version, 'bin', name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

async function waitUntil(
  check: () => Promise<boolean>,
  child: ChildProcess,
  what: string,
  logFile?: string,
) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) {
      const log =
        logFile !== undefined && existsSync(logFile)
          ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ')
          : '';
      throw new Error(`${what} exited with code ${child.exitCode}${log === '' ? '' : `: ${log}`}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start within 30 s`);
}

/**
 * Stops `child` with `signal`, sent again every `resendMs` until it exits when given: a
 * redis-server refuses a shutdown while it writes its initial AOF (a replica just after its
 * first sync: "Writing initial AOF, can't exit") and does not try again by itself; the next
 * SIGTERM, once the rewrite is done, stops it.
 */
function stopper(
  child: ChildProcess,
  signal: NodeJS.Signals,
  resendMs?: number,
): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const again =
        resendMs === undefined ? undefined : setInterval(() => child.kill(signal), resendMs);
      child.once('exit', () => {
        clearInterval(again);
        resolve();
      });
      child.kill(signal);
    });
}

export interface RedisServerOptions {
  dataDir: string;
  port?: number;
  /** AOF persistence (fsync every second), as a production sale would run it. */
  appendOnly?: boolean;
  /** More redis-server options (a cluster node's), appended as given. */
  extraArgs?: readonly string[];
}

export async function startRedisServer(given: RedisServerOptions): Promise<LocalService> {
  // redis-server changes into --dir before it opens --logfile: both must be absolute.
  const options = { ...given, dataDir: resolve(given.dataDir) };
  const binary = findBinary('redis-server');
  if (binary === undefined) throw new Error('redis-server not found (apt install redis-server)');
  const port = options.port ?? (await freePort());
  await mkdir(options.dataDir, { recursive: true });
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      options.dataDir,
      '--save',
      '',
      '--appendonly',
      options.appendOnly === true ? 'yes' : 'no',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--logfile',
      join(options.dataDir, 'redis.log'),
      ...(options.extraArgs ?? []),
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  await waitUntil(
    () => isListening(url, 200),
    child,
    'redis-server',
    join(options.dataDir, 'redis.log'),
  );
  return {
    url,
    port,
    pid: child.pid ?? -1,
    dataDir: options.dataDir,
    stop: stopper(child, 'SIGTERM', 1_000),
  };
}

export interface PostgresServerOptions {
  dataDir: string;
  port?: number;
  /** Trade durability for speed (fsync off): for throwaway test clusters only. */
  ephemeral?: boolean;
}

/**
 * Starts a private PostgreSQL, running initdb first when the directory is empty. PostgreSQL
 * refuses to run as root, so as root it runs as the `postgres` system user.
 */
export async function startPostgresServer(given: PostgresServerOptions): Promise<LocalService> {
  const options = { ...given, dataDir: resolve(given.dataDir) };
  const postgres = findBinary('postgres');
  const initdb = findBinary('initdb');
  if (postgres === undefined || initdb === undefined) {
    throw new Error('postgres/initdb not found (apt install postgresql)');
  }
  const asRoot = process.getuid?.() === 0;
  const wrap = (command: string, args: string[]): [string, string[]] =>
    // setpriv execs in place (no intermediate process), so our signals reach postgres itself.
    asRoot
      ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', command, ...args]]
      : [command, args];
  await mkdir(options.dataDir, { recursive: true });
  if (asRoot) {
    // The postgres user must be able to walk down to its data directory.
    for (let dir = dirname(resolve(options.dataDir)); dir !== dirname(dir); dir = dirname(dir)) {
      if (((await stat(dir)).mode & 0o001) === 0) {
        throw new Error(
          `postgres runs as the postgres user, which cannot enter ${dir}: chmod o+x it or choose another data directory`,
        );
      }
    }
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(options.dataDir, Number(stdout.trim()), Number(gid.trim()));
  }
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) {
    const [command, args] = wrap(initdb, [
      '-D',
      options.dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-sync',
    ]);
    await run(command, args);
    await writeFile(join(options.dataDir, 'fsale.note'), 'created by fsale\n').catch(
      () => undefined,
    );
  }
  const port = options.port ?? (await freePort());
  const [command, args] = wrap(postgres, [
    '-D',
    options.dataDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${options.dataDir}`,
    '-c',
    'max_connections=300',
    ...(options.ephemeral === true ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off'] : []),
  ]);
  const child = spawn(command, args, { stdio: 'ignore' });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitUntil(() => isListening(url, 200), child, 'postgres');
  // Listening is not accepting: wait until a query succeeds (recovery may still run).
  const pg = (await import('pg')).default;
  await waitUntil(
    async () => {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    child,
    'postgres',
  );
  // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, then exit cleanly.
  return {
    url,
    port,
    pid: child.pid ?? -1,
    dataDir: options.dataDir,
    stop: stopper(child, 'SIGINT'),
  };
}
