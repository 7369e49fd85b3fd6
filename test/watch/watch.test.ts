import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { buildApp } from '../../src/server/app.js';
import {
  renderLine,
  renderPanel,
  stockBar,
  toJsonLine,
  type WatchSnapshot,
} from '../../src/watch/view.js';
import { startCli } from '../helpers/process.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';

const snapshot: WatchSnapshot = {
  productId: 'p1',
  name: 'Red shoe',
  total: 100,
  remaining: 25,
  acceptedPerSecond: 12.4,
  confirmedPerSecond: 3,
  paid: 60,
  failed: 5,
  pending: 10,
  needsReconciliation: 0,
  soldOutAt: undefined,
  firstSaleAt: undefined,
  connected: true,
  at: Date.parse('2026-11-25T10:00:00Z'),
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
      '2026-11-25T10:00:00.000Z p1 remaining 25/100 accepted/s 12 confirmed/s 3 paid 60 failed 5 pending 10 reconciling 0 not sold out',
    );
    const soldOut = {
      ...snapshot,
      remaining: 0,
      soldOutAt: snapshot.at + 1500,
      firstSaleAt: snapshot.at,
    };
    expect(renderPanel(soldOut)[4]).toBe(
      'sold out at 10:00:01.500 (1.50 s after the first sale seen)',
    );
    expect(JSON.parse(toJsonLine({ ...snapshot, connected: false }))).toMatchObject({
      remaining: 25,
      connected: false,
      soldOutAt: null,
    });
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
    expect(aging.app.sale.sse.stats.expired).toBeGreaterThanOrEqual(1);
  });

  it('an unknown product is a one-line error with exit 2', async () => {
    const watch = startCli(['watch', '--product', 'nope', '--url', api.url], s.env);
    expect((await watch.exited).code).toBe(2);
    expect(watch.output()).toMatch(/unknown product nope/);
  });
});
