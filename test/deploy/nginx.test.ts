import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { freePort, isListening } from '../../src/infra/local-services.js';
import { DEFAULT_STOCK_STREAMS_PER_ADDRESS } from '../../src/server/sse-budget.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { connectSse } from '../helpers/sse-client.js';
import { until } from '../helpers/wait.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path)) ?? 'nginx';

describe('the compose topology without containers: nginx (deploy/nginx.conf) in front of two API processes', () => {
  let s: TestServices;
  let apis: RunningApi[];
  let prefix: string;
  let nginxUrl: string;
  let stopNginx: () => Promise<void>;

  beforeAll(async () => {
    s = await useTestServices();
    // As compose runs them: X-Forwarded-For believed from the proxy's address only. One has
    // demo auth on, to prove nginx never forwards it even when an API mounts it.
    apis = [
      await startApi(s, { trustProxy: 'loopback' }),
      await startApi(s, { trustProxy: 'loopback', demoAuth: true }),
    ];
    prefix = await mkdtemp(join(tmpdir(), 'fsale-nginx-'));
    // The very file compose mounts; only where it listens and its upstreams are ours.
    await copyFile(
      fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url)),
      join(prefix, 'nginx.conf'),
    );
    const port = await freePort();
    await writeFile(join(prefix, 'listen.conf'), `listen 127.0.0.1:${port};\n`);
    await writeFile(
      join(prefix, 'upstream.conf'),
      `upstream fsale_api {\n${apis.map((a) => `  server ${new URL(a.url).host};`).join('\n')}\n  keepalive 64;\n}\n`,
    );
    const nginx = spawn(
      NGINX,
      ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    nginx.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => nginx.once('exit', () => resolve()));
    nginxUrl = `http://127.0.0.1:${port}`;
    for (let i = 0; !(await isListening(nginxUrl, 200)); i++) {
      if (nginx.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    stopNginx = async () => {
      nginx.kill('SIGQUIT'); // graceful: finish open requests
      await exited;
    };
  });
  afterAll(async () => {
    await stopNginx();
    await rm(prefix, { recursive: true, force: true });
  });

  it('sells through nginx, spread over both API processes, with exact stock', async () => {
    await seed(s, { productId: 'ngx', stock: 150 });
    const proxy = { url: nginxUrl };
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 300 }, (_, i) => `ngx${i}`),
      600,
    );
    const responses = await Promise.all(
      tokens.map((token) => buy(proxy, { token, productId: 'ngx', key: freshKey() })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((c) => c === 202)).toHaveLength(150);
    expect(statuses.filter((c) => c === 409)).toHaveLength(150);
    // Both replicas answered some of them.
    for (const api of apis) {
      const metrics = await api.app.api.metrics.registry.getSingleMetricAsString(
        'fsale_buy_outcomes_total',
      );
      expect(metrics).toMatch(/outcome="(accepted|sold_out)"\} [1-9]/);
    }
  });

  it('streams SSE through nginx without buffering', async () => {
    await seed(s, { productId: 'ngxlive', stock: 10 });
    const stream = await connectSse(`${nginxUrl}/stock/ngxlive/stream`);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    const first = await stream.waitFor((e) => e.event === 'stock');
    expect(first.id).toBe('10');
    const proxy = { url: nginxUrl };
    await buy(proxy, {
      token: mintTokens(TEST_JWT_SECRET, ['ngxsse'], 600)[0] ?? '',
      productId: 'ngxlive',
      key: freshKey(),
    });
    // With buffering on, this event would sit in nginx until its buffer filled.
    const next = await stream.waitFor((e) => e.event === 'stock' && e.id === '9');
    expect(JSON.parse(next.data)).toMatchObject({ remaining: 9 });
    stream.close();
  });

  it('forwards only the public API: /metrics, the demo sign-in and anything unknown stop at nginx', async () => {
    for (const path of [
      '/metrics',
      '/demo/token?user=alice',
      '/admin',
      '/order',
      '/x/y/z',
      '/docs',
      '/docs/json',
    ]) {
      for (let i = 0; i < 2; i++) {
        // Twice, so both replicas would have had their turn.
        const r = await send(nginxUrl, { path });
        expect(r.status, path).toBe(404);
        expect(r.body, path).not.toMatch(/fsale_|token/);
      }
    }
    for (const api of apis) {
      const seen = await api.app.api.metrics.registry.getSingleMetricAsString(
        'fsale_http_requests_total',
      );
      expect(seen).not.toMatch(/route="unmatched"|\/metrics|\/demo\/token/);
    }
    // What is public still passes.
    await seed(s, { productId: 'ngxpub', stock: 3 });
    expect((await send(nginxUrl, { path: '/products/ngxpub' })).status).toBe(200);
    expect((await send(nginxUrl, { path: '/?product=ngxpub' })).status).toBe(200);
    expect((await send(nginxUrl, { path: '/app.js' })).status).toBe(200);
    expect((await send(nginxUrl, { path: '/healthz' })).status).toBe(200);
    const spec = await send(nginxUrl, { path: '/openapi.json' });
    expect(spec.status).toBe(200);
    expect((JSON.parse(spec.body) as { openapi: string }).openapi).toMatch(/^3\./);
    const ready = await send(nginxUrl, { path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
  });

  it('one address holds at most the nginx cap of stock streams (the rest get a retry hint), across both API processes, and a buy still passes', async () => {
    const conf = await readFile(join(prefix, 'nginx.conf'), 'utf8');
    const cap = Number(/limit_conn stock_streams (\d+);/.exec(conf)?.[1]);
    // The API's own per-address default, counted by nginx over every API process.
    expect(cap).toBe(DEFAULT_STOCK_STREAMS_PER_ADDRESS);
    await seed(s, { productId: 'ngxcap', stock: 5 });
    const streams = await Promise.all(
      Array.from({ length: cap + 8 }, () => connectSse(`${nginxUrl}/stock/ngxcap/stream`)),
    );
    try {
      // Each one either holds (its first stock event came) or was refused (it ended).
      const held = await Promise.all(
        streams.map((stream) =>
          Promise.race([
            stream.waitFor((e) => e.event === 'stock').then(() => true),
            stream.ended.then(() => false),
          ]),
        ),
      );
      expect(held.filter(Boolean)).toHaveLength(cap);
      const counted = apis.reduce(
        (sum, api) => sum + api.app.api.sse.count('stock', '127.0.0.1'),
        0,
      );
      expect(counted).toBe(cap);
      // Refused as the API refuses over budget: 200, a retry hint, the end.
      for (const stream of streams.filter((_, i) => held[i] !== true)) {
        expect(stream.status).toBe(200);
        expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
        expect(stream.events).toEqual([{ data: '', retry: 4000 }]);
      }
      const bought = await buy(
        { url: nginxUrl },
        {
          token: mintTokens(TEST_JWT_SECRET, ['ngxcap'], 600)[0] ?? '',
          productId: 'ngxcap',
          key: freshKey(),
        },
      );
      expect(bought.status, bought.body).toBe(202);
    } finally {
      for (const stream of streams) stream.close();
    }
    await until('the streams to be closed on the API processes', () =>
      apis.every((api) => api.app.api.sse.count('stock', '127.0.0.1') === 0),
    );
  });

  it('a client cannot name another address through nginx: X-Forwarded-For is replaced, not appended', async () => {
    await seed(s, { productId: 'ngxip', stock: 3 });
    const streams = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        connectSse(`${nginxUrl}/stock/ngxip/stream`, { 'x-forwarded-for': `203.0.113.${n}` }),
      ),
    );
    for (const stream of streams) await stream.waitFor((e) => e.event === 'stock');
    const counted = (owner: string) =>
      apis.reduce((sum, api) => sum + api.app.api.sse.count('stock', owner), 0);
    expect(counted('127.0.0.1')).toBe(4);
    expect(counted('203.0.113.1')).toBe(0);
    for (const stream of streams) stream.close();
  });
});
