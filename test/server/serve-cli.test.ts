import { beforeAll, describe, expect, it } from 'vitest';
import { send } from '../helpers/http.js';
import { childPids, isAlive, startCli } from '../helpers/process.js';
import { seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';

describe('fsale serve', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'cl', stock: 100 });
  });

  it('--api-workers 2 forks two API processes on one port and shuts all down cleanly on SIGTERM', async () => {
    const server = startCli(['serve', '--port', '0', '--api-workers', '2'], s.env);
    const url = await server.waitFor(/listening on (http:\/\/\S+) \(2 processes/);
    const workers = childPids(server.pid);
    expect(workers).toHaveLength(2);

    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        send(url, {
          method: 'POST',
          path: '/order/buy',
          headers: { authorization: `Bearer ${tokenFor(`w${i}`)}`, 'idempotency-key': `k${i}` },
          body: { productId: 'cl', qty: 1 },
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(202));

    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(isAlive(pid)).toBe(false);
  });

  it('refuses to start without a JWT secret (exit 2, names the variable)', async () => {
    const { FSALE_JWT_SECRET: _unused, ...env } = s.env;
    const result = await runCli(['serve', '--port', '0'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/FSALE_JWT_SECRET: is required/);
  });
});
