// A private PostgreSQL a test file may stop and start (never the machine's shared server).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../src/db/migrate.js';
import { startPostgresServer, type LocalService } from '../../src/infra/local-services.js';
import { isAlive } from './process.js';
import { until } from './wait.js';

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
