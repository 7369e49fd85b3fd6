// startStack (src/stack/stack.ts), under `fsale up` and `fsale demo`: ready means every
// process has started, and a niceness given applies to every process of the stack.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startStack } from '../../src/stack/stack.js';
import { descendants } from '../helpers/process.js';
import { useTestServices } from '../helpers/services.js';

const niceOf = (pid: number) =>
  Number(execFileSync('ps', ['-o', 'ni=', '-p', String(pid)], { encoding: 'utf8' }).trim());

describe('startStack', () => {
  it('is ready once every worker has started, and runs every process at the niceness given', async () => {
    const s = await useTestServices();
    const dir = await mkdtemp(join(tmpdir(), 'fsale-stack-'));
    const lines: string[] = [];
    const stack = await startStack({
      redisUrl: s.redisUrl,
      databaseUrl: s.databaseUrl,
      keyPrefix: s.keyPrefix,
      jwtSecret: 'a-test-secret-of-32-characters!!',
      dataDir: dir,
      port: 0,
      gatewayPort: 0,
      gatewaySpeed: 100,
      apiWorkers: 2,
      orderWorkers: 1,
      paymentWorkers: 1,
      demoAuth: false,
      niceness: 5,
      onLine: (name, line) => lines.push(`${name} ${line}`),
      onNotice: () => undefined,
    });
    try {
      for (const name of ['orders-1', 'payments-1', 'reconcile'])
        expect(lines.some((l) => l.startsWith(`${name} `) && l.includes('"event":"started"'))).toBe(
          true,
        );
      const pids = stack.processes.map((p) => p.pid);
      const all = [...pids, ...pids.flatMap((pid) => descendants(pid))];
      // gateway, API primary + 2 workers, orders, payments, reconcile
      expect(all.length).toBeGreaterThanOrEqual(7);
      for (const pid of all) expect(niceOf(pid), `pid ${pid}`).toBe(niceOf(process.pid) + 5);
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
