import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/redis/client.js';
import { seedProduct } from '../../src/sale/seed.js';
import { descendants, isAlive, startCli } from '../helpers/process.js';
import { buy, seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

describe('fsale up', () => {
  let s: TestServices;
  let dataDir: string;
  beforeAll(async () => {
    s = await useTestServices();
    dataDir = await mkdtemp(join(tmpdir(), 'fsale-up-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  /** Waits until the stack's own workers have taken the order to paid or payment_failed. */
  const settledThroughTheStack = (orderId: string) =>
    expect
      .poll(
        async () =>
          (
            await s.pool.query<{ status: string }>('SELECT status FROM orders WHERE id = $1', [
              orderId,
            ])
          ).rows[0]?.status,
        { timeout: 60_000 },
      )
      .toMatch(/^(paid|payment_failed)$/);

  const upArgs = (dir: string) => [
    'up',
    '--port',
    '0',
    '--gateway-port',
    '0',
    '--data-dir',
    dir,
    '--gateway-speed',
    '100',
  ];

  it('starts API, workers and gateway, sells through them, and leaves no process behind on SIGTERM', async () => {
    await seed(s, { productId: 'upp', stock: 20 });
    const up = startCli(upArgs(dataDir), s.env);
    const apiUrl = await up.waitFor(/ready: API (http:\/\/\S+),/);
    const tree = descendants(up.pid);
    // gateway, API primary + 2 workers, orders, payments, reconcile
    expect(tree.length).toBeGreaterThanOrEqual(7);

    const r = await buy(
      { url: apiUrl },
      { token: tokenFor('upbuyer'), productId: 'upp', key: 'k1' },
    );
    expect(r.status).toBe(202);
    const { orderId } = JSON.parse(r.body) as { orderId: string };
    // The order goes all the way through the stack's own workers.
    await settledThroughTheStack(orderId);

    up.child.kill('SIGTERM');
    expect(await up.exited).toEqual({ code: 0, signal: null });
    for (const pid of tree) expect(isAlive(pid), `pid ${pid} outlived fsale up`).toBe(false);
    expect(up.output()).toMatch(/stopped/);
  });

  it('a SIGTERM while it is still starting stops everything it had started', async () => {
    const up = startCli(upArgs(dataDir), s.env);
    // The API listens; the workers are still starting: up is not ready yet.
    await up.waitFor(/api .*(listening on)/);
    const tree = descendants(up.pid);
    expect(tree.length).toBeGreaterThan(0);
    up.child.kill('SIGTERM');
    const exit = await up.exited;
    expect(exit.code, up.output()).toBe(2);
    expect(up.output()).toMatch(/stopped while starting/);
    expect(up.output()).not.toMatch(/ready: API/);
    for (const pid of tree) expect(isAlive(pid), `pid ${pid} outlived fsale up`).toBe(false);
  });

  it('starts private redis-server and postgres when nothing answers, says so, and stops them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fsale-up-private-'));
    await chmod(dir, 0o755); // postgres runs as its own user when we are root
    try {
      const env = {
        ...s.env,
        REDIS_URL: 'redis://127.0.0.1:1',
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/fsale',
      };
      const up = startCli(upArgs(dir), env);
      await up.waitFor(/(ready: API)/);
      expect(up.output()).toMatch(
        /started a private redis-server at redis:\/\/127\.0\.0\.1:\d+ \(AOF on/,
      );
      expect(up.output()).toMatch(
        /started a private postgres at postgres:\/\/postgres@127\.0\.0\.1:\d+/,
      );
      const tree = descendants(up.pid);
      up.child.kill('SIGINT');
      expect((await up.exited).code).toBe(0);
      for (const pid of tree) expect(isAlive(pid), `pid ${pid} outlived fsale up`).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--redis-cluster runs the whole stack on a private local Redis Cluster and stops it; a second run resumes that cluster', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fsale-up-cluster-'));
    try {
      const up = startCli([...upArgs(dir), '--redis-cluster'], s.env);
      const apiUrl = await up.waitFor(/ready: API (http:\/\/\S+),/);
      const clusterUrl =
        /private Redis Cluster of 3 masters and 3 replicas at (redis:\/\/\S+) /.exec(
          up.output(),
        )?.[1];
      expect(clusterUrl).toMatch(/^redis:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
      const redis = await connectRedis(clusterUrl ?? '');
      try {
        await seedProduct(
          { pool: s.pool, redis, keyPrefix: s.keyPrefix },
          { productId: 'upc', stock: 5 },
        );
      } finally {
        redis.disconnect();
      }
      const r = await buy(
        { url: apiUrl },
        { token: tokenFor('clusterbuyer'), productId: 'upc', key: 'k1' },
      );
      expect(r.status, r.body).toBe(202);
      const { orderId } = JSON.parse(r.body) as { orderId: string };
      await settledThroughTheStack(orderId);
      const tree = descendants(up.pid);
      up.child.kill('SIGTERM');
      expect(await up.exited).toEqual({ code: 0, signal: null });
      for (const pid of tree) expect(isAlive(pid), `pid ${pid} outlived fsale up`).toBe(false);

      // A second run on the same data directory resumes that cluster, its sale state kept.
      const again = startCli([...upArgs(dir), '--redis-cluster'], s.env);
      const againUrl = await again.waitFor(/ready: API (http:\/\/\S+),/);
      expect(again.output()).toContain(`at ${clusterUrl ?? ''} `);
      const next = await buy(
        { url: againUrl },
        { token: tokenFor('secondrun'), productId: 'upc', key: 'k2' },
      );
      expect(next.status, next.body).toBe(202);
      again.child.kill('SIGTERM');
      expect(await again.exited).toEqual({ code: 0, signal: null });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a component that dies stops the whole stack with exit 1 (nothing restarted silently)', async () => {
    const up = startCli(upArgs(dataDir), s.env);
    await up.waitFor(/(ready: API)/);
    const tree = descendants(up.pid);
    const gatewayPid = Number(/gateway \(pid (\d+)\)/.exec(up.output())?.[1] ?? tree[0]);
    process.kill(tree[0] ?? gatewayPid, 'SIGKILL'); // the first child: the gateway
    expect((await up.exited).code).toBe(1);
    expect(up.output()).toMatch(/exited unexpectedly .*stopping everything/);
    for (const pid of tree) expect(isAlive(pid)).toBe(false);
  });
});
