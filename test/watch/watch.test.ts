import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { applyReleaseToRedis } from '../../src/sale/release.js';
import { buildApp } from '../../src/server/app.js';
import { countedMoves, stockMoves } from '../../src/watch/session.js';
import {
  renderLine,
  renderPanel,
  sparkline,
  stockBar,
  toJsonLine,
  type WatchSnapshot,
} from '../../src/watch/view.js';
import { startCli } from '../helpers/process.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';

const snapshot: WatchSnapshot = {
  productId: 'p1',
  name: 'Red shoe',
  total: 100,
  remaining: 25,
  acceptedPerSecond: 12.4,
  releasedPerSecond: 1,
  confirmedPerSecond: 3,
  paid: 60,
  failed: 5,
  pending: 10,
  needsReconciliation: 0,
  soldOutAt: undefined,
  firstSaleAt: undefined,
  connected: true,
  at: Date.parse('2026-11-25T10:00:00Z'),
  history: [100, 80, 50, 25],
};

describe('watch view', () => {
  it('draws a stock bar proportional to what is left', () => {
    expect(stockBar(25, 100, 20)).toBe(`[${'#'.repeat(5)}${'.'.repeat(15)}]`);
    expect(stockBar(0, 100, 10)).toBe('[..........]');
    expect(stockBar(100, 100, 10)).toBe('[##########]');
    expect(stockBar(5, 0, 4)).toBe('[....]');
  });

  it('renders a line, a panel and a JSON object from one snapshot', () => {
    expect(renderLine(snapshot)).toBe(
      '2026-11-25T10:00:00.000Z p1 remaining 25/100 accepted/s 12 released/s 1 confirmed/s 3 paid 60 failed 5 pending 10 reconciling 0 not sold out stock [#*=:]',
    );
    const soldOut = {
      ...snapshot,
      remaining: 0,
      soldOutAt: snapshot.at + 1500,
      firstSaleAt: snapshot.at,
    };
    expect(renderPanel(snapshot)[2]).toBe('over time █▆▄▂');
    expect(renderPanel(snapshot)[3]).toMatch(/released +1 \/s/);
    expect(renderPanel(soldOut)[5]).toBe(
      'sold out at 10:00:01.500 (1.50 s after the first sale seen)',
    );
    expect(JSON.parse(toJsonLine({ ...snapshot, connected: false }))).toMatchObject({
      remaining: 25,
      connected: false,
      soldOutAt: null,
      releasedPerSecond: 1,
    });
  });

  it('draws the stock over time: unicode blocks on a terminal, ASCII elsewhere, 0 left at the floor', () => {
    const levels = [0, 1, 25, 50, 75, 100];
    expect(sparkline(levels, 100, true)).toBe(' ▁▂▄▆█');
    expect(sparkline(levels, 100, false)).toBe('_.:=+#');
    expect(sparkline(levels, 100, false)).toMatch(/^[\x20-\x7e]*$/);
    expect(sparkline([5, 0], 0, true)).toBe('  ');
  });

  it('counts accepts and releases from the stock events one by one: a release does not hide the accepts', () => {
    // 10 -> 7 (3 bought) -> 8 (1 released) -> 5 (3 bought): 6 accepted, 1 released. The net
    // drop (10 -> 5) would say 5 accepted and no release.
    let moved = { accepted: 0, released: 0 };
    let before: number | undefined;
    for (const after of [10, 7, 8, 5]) {
      moved = stockMoves(moved, before, after);
      before = after;
    }
    expect(moved).toEqual({ accepted: 6, released: 1 });
  });

  it("counts accepts and releases from the server's counts when it sends them, even when a buy and a release cancel out in one event", () => {
    // 10 -> 9 -> 10 within one coalesced interval: the level says nothing happened.
    let moved = { accepted: 0, released: 0 };
    moved = countedMoves(moved, { accepted: 4, released: 0 }, { accepted: 5, released: 1 });
    expect(stockMoves({ accepted: 0, released: 0 }, 10, 10)).toEqual({ accepted: 0, released: 0 });
    expect(moved).toEqual({ accepted: 1, released: 1 });
  });
});

describe('fsale watch', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
  });

  it('prints JSON lines through a pipe and exits 0 with --until-sold-out when the stock reaches 0', async () => {
    await seed(s, { productId: 'watched', stock: 50 });
    const watch = startCli(
      [
        'watch',
        '--product',
        'watched',
        '--url',
        api.url,
        '--json',
        '--interval',
        '200ms',
        '--until-sold-out',
      ],
      s.env,
    );
    await watch.waitFor(/"remaining":50/);
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 50 }, (_, i) => `watcher${i}`),
      600,
    );
    await Promise.all(
      tokens.map((token) => buy(api, { token, productId: 'watched', key: freshKey() })),
    );
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    const lines = watch
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ productId: 'watched', total: 50 });
    expect(lines.at(-1)).toMatchObject({ remaining: 0, connected: true });
    expect(lines.at(-1)?.soldOutAt).toEqual(expect.any(String));
  });

  it('prints one plain line per interval when not on a TTY, says when it reconnects, and exits 0 on SIGINT', async () => {
    await seed(s, { productId: 'plain', stock: 10 });
    const first = await startApi(s);
    const port = Number(new URL(first.url).port);
    const watch = startCli(
      ['watch', '--product', 'plain', '--url', first.url, '--interval', '200ms'],
      s.env,
    );
    await watch.waitFor(/plain remaining 10\/10 accepted\/s \d+/);

    await first.app.close();
    await watch.waitFor(/(stream lost; reconnecting with Last-Event-ID 10)/);
    const second = await buildApp({
      redisUrl: s.redisUrl,
      databaseUrl: s.databaseUrl,
      keyPrefix: s.keyPrefix,
      jwtSecret: TEST_JWT_SECRET,
    });
    await second.listen({ host: '127.0.0.1', port });
    try {
      await watch.waitFor(/(reconnected after [\d.]+ s)/);
      watch.child.kill('SIGINT');
      expect(await watch.exited).toEqual({ code: 0, signal: null });
    } finally {
      await second.close();
    }
    expect(watch.output()).not.toContain('\u001b[');
  });

  it('reconnects by itself when the server ends its stream at the max age, and says so', async () => {
    await seed(s, { productId: 'aging', stock: 3 });
    const aging = await startApi(s, { sse: { maxAgeMs: 1000 } });
    const watch = startCli(
      ['watch', '--product', 'aging', '--url', aging.url, '--interval', '200ms'],
      s.env,
    );
    await watch.waitFor(/(stream lost; reconnecting with Last-Event-ID 3)/);
    await watch.waitFor(/(reconnected after [\d.]+ s)/);
    await watch.waitFor(/aging remaining 3\/3/);
    watch.child.kill('SIGINT');
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    expect(aging.app.api.sse.stats.expired).toBeGreaterThanOrEqual(1);
  });

  it('shows units released apart from accepts and clears "sold out" when units come back', async () => {
    await seed(s, { productId: 'restocked', stock: 3 });
    const watch = startCli(
      ['watch', '--product', 'restocked', '--url', api.url, '--json', '--interval', '200ms'],
      s.env,
    );
    await watch.waitFor(/"remaining":3/);
    const orders: string[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await buy(api, {
        token: tokenFor(`restock${i}`),
        productId: 'restocked',
        key: freshKey(),
      });
      expect(answer.status).toBe(202);
      orders.push((JSON.parse(answer.body) as { orderId: string }).orderId);
    }
    await watch.waitFor(/"remaining":0,.*"soldOutAt":"/);
    // A decline's release, as the payment worker applies it: the unit is on sale again.
    await applyReleaseToRedis(s.redis, s.pool, s.keyPrefix, {
      orderId: orders[0] ?? '',
      productId: 'restocked',
      userId: 'restock0',
      qty: 1,
    });
    await watch.waitFor(/"remaining":1,.*"soldOutAt":null/);
    watch.child.kill('SIGINT');
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    const lines = watch
      .output()
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            remaining: number;
            acceptedPerSecond: number;
            releasedPerSecond: number;
          },
      );
    expect(lines.some((l) => l.acceptedPerSecond > 0)).toBe(true);
    expect(lines.some((l) => l.releasedPerSecond > 0)).toBe(true);
    // Only the line that saw the stock rise says a unit came back.
    for (const l of lines.filter((x) => x.releasedPerSecond > 0)) expect(l.remaining).toBe(1);
  });

  it('an unknown product is a one-line error with exit 2', async () => {
    const watch = startCli(['watch', '--product', 'nope', '--url', api.url], s.env);
    expect((await watch.exited).code).toBe(2);
    expect(watch.output()).toMatch(/unknown product nope/);
  });
});
