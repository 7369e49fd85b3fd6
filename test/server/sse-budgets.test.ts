// Event streams are sockets, and anyone may open a stock stream. These tests prove that the
// anonymous ones cannot take what owners and buyers need: separate budgets per kind, a share
// per client address (and per user for order streams), and defaults sized from the process's
// open-file limit.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FALLBACK_FD_LIMIT, openFileLimit, sseBudgetsFor } from '../../src/server/sse-budget.js';
import { runCli } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { buy, freshKey, seed, startApi, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { connectSse, type SseConnection } from '../helpers/sse-client.js';

/** A stream the server took: it sent its snapshot and stays open. */
async function expectOpen(stream: SseConnection, event: string): Promise<void> {
  expect(stream.status).toBe(200);
  await stream.waitFor((e) => e.event === event);
}

/** A stream the server refused: 200 with only a retry hint, then closed. */
async function expectRefused(stream: SseConnection): Promise<void> {
  expect(stream.status).toBe(200);
  await stream.ended;
  expect(stream.raw()).toBe('retry: 4000\n\n');
}

describe('SSE budgets', () => {
  let s: TestServices;
  const open: SseConnection[] = [];
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'hot', stock: 50 });
  });
  afterEach(() => {
    for (const stream of open.splice(0)) stream.close();
  });
  const keep = (stream: SseConnection) => {
    open.push(stream);
    return stream;
  };

  it("anonymous stock streams at their cap lock out neither an owner's order stream nor a buy", async () => {
    const api = await startApi(s, {
      sse: { budgets: { stock: { total: 20, perOwner: 100 }, order: { total: 5 } } },
    });
    const owner = tokenFor('owner');
    const accepted = await buy(api, { token: owner, productId: 'hot', key: freshKey() });
    const { orderId } = JSON.parse(accepted.body) as { orderId: string };

    // Anonymous clients take every stock slot; one more is turned away.
    const anonymous = await Promise.all(
      Array.from({ length: 20 }, () => connectSse(`${api.url}/stock/hot/stream`).then(keep)),
    );
    for (const stream of anonymous) await expectOpen(stream, 'stock');
    await expectRefused(keep(await connectSse(`${api.url}/stock/hot/stream`)));
    expect(api.app.api.sse.count('stock')).toBe(20);
    expect(await api.app.api.metrics.registry.metrics()).toMatch(
      /^fsale_sse_streams_refused_total 1$/m,
    );

    // The owner still follows the order, and buys still go through.
    const follow = keep(
      await connectSse(`${api.url}/order/${orderId}/stream?access_token=${owner}`),
    );
    await expectOpen(follow, 'order_queued');
    const next = await buy(api, { token: tokenFor('buyer2'), productId: 'hot', key: freshKey() });
    expect(next.status).toBe(202);
  });

  it('one client address cannot take more than its share of the stock streams', async () => {
    const api = await startApi(s, { sse: { budgets: { stock: { total: 100, perOwner: 3 } } } });
    const url = `${api.url}/stock/hot/stream`;
    for (let i = 0; i < 3; i++) await expectOpen(keep(await connectSse(url)), 'stock');
    await expectRefused(keep(await connectSse(url)));
    // Another address (another loopback source) still gets one; the budget is far from full.
    await expectOpen(keep(await connectSse(url, {}, '127.0.0.2')), 'stock');
    expect(api.app.api.sse.count('stock', '127.0.0.1')).toBe(3);
    expect(api.app.api.sse.count('stock', '127.0.0.2')).toBe(1);
  });

  it('a header cannot buy another share unless --trust-proxy names the proxy that sets it', async () => {
    const direct = await startApi(s, { sse: { budgets: { stock: { perOwner: 2 } } } });
    const forged = (n: number) => ({ 'x-forwarded-for': `203.0.113.${n}` });
    await expectOpen(keep(await connectSse(`${direct.url}/stock/hot/stream`, forged(1))), 'stock');
    await expectOpen(keep(await connectSse(`${direct.url}/stock/hot/stream`, forged(2))), 'stock');
    await expectRefused(keep(await connectSse(`${direct.url}/stock/hot/stream`, forged(3))));

    // Behind a trusted proxy (here: loopback plays nginx) each forwarded client has its share.
    const proxied = await startApi(s, {
      trustProxy: 'loopback',
      sse: { budgets: { stock: { perOwner: 2 } } },
    });
    const url = `${proxied.url}/stock/hot/stream`;
    await expectOpen(keep(await connectSse(url, forged(1))), 'stock');
    await expectOpen(keep(await connectSse(url, forged(1))), 'stock');
    await expectRefused(keep(await connectSse(url, forged(1))));
    await expectOpen(keep(await connectSse(url, forged(2))), 'stock');
  });

  it("one user cannot take the order streams' budget; other owners still get theirs", async () => {
    const api = await startApi(s, { sse: { budgets: { order: { total: 10, perOwner: 2 } } } });
    const hoarder = tokenFor('hoarder');
    const other = tokenFor('other');
    const orderOf = async (token: string) =>
      (
        JSON.parse((await buy(api, { token, productId: 'hot', key: freshKey() })).body) as {
          orderId: string;
        }
      ).orderId;
    const mine = await orderOf(hoarder);
    const theirs = await orderOf(other);
    const stream = (id: string, token: string) =>
      connectSse(`${api.url}/order/${id}/stream?access_token=${token}`).then(keep);
    await expectOpen(await stream(mine, hoarder), 'order_queued');
    await expectOpen(await stream(mine, hoarder), 'order_queued');
    await expectRefused(await stream(mine, hoarder));
    await expectOpen(await stream(theirs, other), 'order_queued');
  });

  it('default budgets come from the open-file limit and leave half of it for everything else', async () => {
    expect(sseBudgetsFor(20_000)).toEqual({
      stock: { total: 8_000, perOwner: 64 },
      order: { total: 2_000, perOwner: 8 },
    });
    const small = sseBudgetsFor(1024);
    expect(small.stock.total + small.order.total).toBeLessThanOrEqual(512);
    // A huge limit does not mean unbounded streams.
    expect(sseBudgetsFor(Number.MAX_SAFE_INTEGER).stock.total).toBe(20_000);

    const dir = await mkdtemp(join(tmpdir(), 'fsale-limits-'));
    try {
      const limits = join(dir, 'limits');
      await writeFile(
        limits,
        'Limit                     Soft Limit           Hard Limit           Units     \n' +
          'Max processes             63422                63422                processes \n' +
          'Max open files            4096                 524288               files     \n',
      );
      expect(openFileLimit(limits)).toBe(4096);
      expect(openFileLimit(join(dir, 'missing'))).toBe(FALLBACK_FD_LIMIT);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fsale serve says which budgets it derived from its limit, and rejects bad budget flags', async () => {
    const server = startCli(['serve', '--port', '0'], s.env);
    await server.waitFor(/listening on (http:\/\/\S+)/);
    const limit = openFileLimit();
    const expected = sseBudgetsFor(limit);
    expect(server.output()).toContain(
      `SSE budgets: ${expected.stock.total} stock streams (${expected.stock.perOwner} per address), ${expected.order.total} order streams (${expected.order.perOwner} per user), of ${limit} open files`,
    );
    server.child.kill('SIGTERM');
    await server.exited;

    for (const args of [
      ['--sse-max-per-ip', '0'],
      ['--sse-max-order-streams', 'many'],
      ['--trust-proxy', 'nginx.local'],
      ['--trust-proxy', '10.0.0.0/33'],
    ]) {
      const result = await runCli(['serve', '--port', '0', ...args], s.env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
    }
  });
});
