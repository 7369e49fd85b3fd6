// What `fsale serve` shows to whoever reaches its port: demo auth only when asked for and only
// on loopback unless asked twice, and the operator's routes on a listener of their own.
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, isListening } from '../../src/infra/local-services.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { startCli } from '../helpers/process.js';
import { seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

const buyAs = (url: string, user: string, key: string) =>
  send(url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${tokenFor(user)}`, 'idempotency-key': key },
    body: { productId: 'surf', qty: 1 },
  });

describe('fsale serve: the deployment surface', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'surf', stock: 100 });
  });

  // The warning is one line on stderr, whatever the log level: no level may silence it.
  it.each([
    ['the default log level', [], {}],
    ['LOG_LEVEL=error', [], { LOG_LEVEL: 'error' }],
    ['--log-level silent', ['--log-level', 'silent'], {}],
  ])(
    '--demo-auth on loopback starts, with a loud warning line on stderr at %s, and signs demo tokens',
    async (_level, flags: string[], env: Record<string, string>) => {
      // A port of our own: at these levels no "listening on" line says which one.
      const port = await freePort();
      const server = startCli(['serve', '--port', String(port), '--demo-auth', ...flags], {
        ...s.env,
        ...env,
      });
      const url = `http://127.0.0.1:${port}`;
      await until('serve to listen', () => isListening(url, 200));
      const warnings = server
        .stderr()
        .split('\n')
        .filter((line) => line.includes('demo-auth'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^WARNING: --demo-auth is ON: .*anyone who reaches .* can buy as anyone\. Never run it in production\.$/,
      );
      const demo = await send(url, { path: '/demo/token?user=alice' });
      expect(demo.status).toBe(200);
      server.child.kill('SIGTERM');
      expect(await server.exited).toEqual({ code: 0, signal: null });
    },
  );

  it('--demo-auth on a non-loopback address is refused (exit 2) unless --allow-public-demo-auth says so', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      const refused = await runCli(['serve', '--port', '0', '--host', host, '--demo-auth'], s.env);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/only runs on loopback.*--allow-public-demo-auth/);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    }
    // The second flag alone means nothing.
    const alone = await runCli(['serve', '--port', '0', '--allow-public-demo-auth'], s.env);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--demo-auth/);

    const allowed = startCli(
      ['serve', '--port', '0', '--host', '0.0.0.0', '--demo-auth', '--allow-public-demo-auth'],
      s.env,
    );
    const url = await allowed.waitFor(/listening on (http:\/\/\S+)/);
    expect(allowed.output()).toMatch(/--demo-auth is ON/);
    const port = new URL(url).port;
    expect((await send(`http://127.0.0.1:${port}`, { path: '/demo/token?user=bob' })).status).toBe(
      200,
    );
    allowed.child.kill('SIGTERM');
    expect(await allowed.exited).toEqual({ code: 0, signal: null });
  });

  it('without --demo-auth there is no demo token route', async () => {
    const server = startCli(['serve', '--port', '0'], s.env);
    const url = await server.waitFor(/listening on (http:\/\/\S+)/);
    expect(server.output()).not.toMatch(/demo-auth/);
    expect((await send(url, { path: '/demo/token?user=alice' })).status).toBe(404);
    server.child.kill('SIGTERM');
    await server.exited;
  });

  it('metrics and detailed readiness are on the admin listener only; the public /readyz has no details', async () => {
    const server = startCli(['serve', '--port', '0', '--admin-port', '0'], s.env);
    const admin = await server.waitFor(/admin \(metrics, readiness\) on (http:\/\/\S+)/);
    const url = await server.waitFor(/listening on (http:\/\/\S+)/);
    expect(new URL(admin).hostname).toBe('127.0.0.1');
    expect((await buyAs(url, 'adm1', 'k-adm1')).status).toBe(202);

    const publicMetrics = await send(url, { path: '/metrics' });
    expect(publicMetrics.status).toBe(404);
    expect(publicMetrics.body).not.toMatch(/fsale_/);
    const publicReady = await send(url, { path: '/readyz' });
    expect(publicReady.status).toBe(200);
    expect(JSON.parse(publicReady.body)).toEqual({ status: 'ready' });

    const metrics = await send(admin, { path: '/metrics' });
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.body).toMatch(/fsale_buy_outcomes_total\{outcome="accepted"\} 1/);
    expect(JSON.parse((await send(admin, { path: '/readyz' })).body)).toEqual({
      status: 'ready',
      checks: { redis: 'ok', postgres: 'ok' },
    });
    expect(JSON.parse((await send(admin, { path: '/healthz' })).body)).toEqual({ status: 'ok' });
    // Only the operator's routes: the API is not reachable through the admin port.
    expect((await send(admin, { path: '/products/surf' })).status).toBe(404);
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('--api-workers 2 --admin-port: the primary owns the admin port, sums both workers and is ready when both are', async () => {
    const server = startCli(
      ['serve', '--port', '0', '--api-workers', '2', '--admin-port', '0'],
      s.env,
    );
    const admin = await server.waitFor(/admin \(metrics, readiness\) on (http:\/\/\S+)/);
    const url = await server.waitFor(/listening on (http:\/\/\S+) \(2 processes/);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => buyAs(url, `cw${i}`, `k-cw${i}`)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(202));

    const metrics = await send(admin, { path: '/metrics' });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/fsale_buy_outcomes_total\{outcome="accepted"\} 40\b/);
    const ready = JSON.parse((await send(admin, { path: '/readyz' })).body) as {
      status: string;
      workers: { ready: boolean }[];
    };
    expect(ready.status).toBe('ready');
    expect(ready.workers).toHaveLength(2);
    expect(ready.workers.every((w) => w.ready)).toBe(true);
    expect(server.output()).not.toMatch(/EADDRINUSE|already in use/);
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('an admin port already taken is a one-line error, exit 2', async () => {
    const first = startCli(['serve', '--port', '0', '--admin-port', '0'], s.env);
    const admin = await first.waitFor(/admin \(metrics, readiness\) on (http:\/\/\S+)/);
    const taken = await runCli(
      ['serve', '--port', '0', '--admin-port', new URL(admin).port],
      s.env,
    );
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/--admin-port: http:\/\/127\.0\.0\.1:\d+ is already in use/);
    first.child.kill('SIGTERM');
    await first.exited;
  });
});
