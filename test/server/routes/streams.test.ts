import { connect } from 'node:net';
import { EventSource } from 'eventsource';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../../src/auth/tokens.js';
import { isCluster } from '../../../src/redis/client.js';
import { releaseUnits } from '../../../src/redis/scripts.js';
import { orderEventsChannel, productKeys } from '../../../src/redis/keys.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../../helpers/services.js';
import { connectSse, type ReceivedEvent } from '../../helpers/sse-client.js';

const stock = (e: ReceivedEvent) =>
  JSON.parse(e.data) as { productId: string; remaining: number; soldOut: boolean };

describe('SSE', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    // Every client here shares 127.0.0.1: the per-address share must not be what is tested.
    api = await startApi(s, { sse: { budgets: { stock: { perOwner: 10_000 } } } });
  });

  it('2,000 clients on one process all get the final stock after 1,000 buys, over one Redis subscription', async () => {
    await seed(s, { productId: 'live', stock: 1000 });
    const clients = await Promise.all(
      Array.from({ length: 2000 }, () => connectSse(`${api.url}/stock/live/stream`)),
    );
    expect(clients.every((c) => c.status === 200)).toBe(true);
    expect(clients[0]?.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(clients[0]?.headers['cache-control']).toMatch(/no-cache/);
    expect(clients[0]?.headers['x-accel-buffering']).toBe('no');
    const first = await clients[0]?.waitFor((e) => e.event === 'stock');
    expect(first && stock(first)).toMatchObject({
      productId: 'live',
      remaining: 1000,
      soldOut: false,
    });
    expect(first?.id).toBe('1000');

    // A client that never reads: it must not hold anyone else back.
    const stuck = connect(Number(new URL(api.url).port), '127.0.0.1');
    stuck.write('GET /stock/live/stream HTTP/1.1\r\nHost: x\r\n\r\n');
    stuck.pause();

    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 1000 }, (_, i) => `sse${i}`),
      600,
    );
    const responses = await Promise.all(
      tokens.map((token) => buy(api, { token, productId: 'live', key: freshKey() })),
    );
    expect(responses.every((r) => r.status === 202)).toBe(true);

    const finals = await Promise.all(
      clients.map((c) => c.waitFor((e) => e.event === 'stock' && stock(e).remaining === 0)),
    );
    expect(finals).toHaveLength(2000);
    for (const final of finals) expect(stock(final)).toMatchObject({ remaining: 0, soldOut: true });
    // Coalesced: a client saw far fewer events than there were changes.
    const counts = clients.map((c) => c.events.filter((e) => e.event === 'stock').length);
    expect(Math.max(...counts)).toBeLessThan(1000);

    // One subscription for this process, not one per client (on a cluster: on the master
    // that owns the channel's slot, and on no other node).
    const channel = productKeys(s.keyPrefix, 'live').stockChannel;
    const nodes = isCluster(s.redis) ? s.redis.nodes('master') : [s.redis];
    const subscribers = await Promise.all(
      nodes.map(
        async (node) => ((await node.pubsub('SHARDNUMSUB', channel)) as [string, number])[1],
      ),
    );
    expect(subscribers.reduce((a, b) => a + b, 0)).toBe(1);
    expect(api.app.api.sse.size).toBeGreaterThanOrEqual(2000);

    stuck.destroy();
    for (const c of clients) c.close();
  });

  it('stock events count the accepts and releases behind the level, also when they cancel out', async () => {
    await seed(s, { productId: 'counted', stock: 10, perUserLimit: 5 });
    const stream = await connectSse(`${api.url}/stock/counted/stream`);
    await stream.waitFor((e) => e.event === 'stock');
    const answers = await Promise.all(
      ['c1', 'c2', 'c3'].map((user) =>
        buy(api, { token: tokenFor(user), productId: 'counted', key: freshKey() }),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202]);
    const first = JSON.parse(answers[0]?.body ?? '{}') as { orderId: string };
    // A release as the payment worker's: the level goes 10 -> 7 -> 8.
    const keys = productKeys(s.keyPrefix, 'counted');
    expect(
      await releaseUnits(s.redis, keys, { orderId: first.orderId, userId: 'c1', qty: 1 }),
    ).toBe(true);
    const last = await stream.waitFor(
      (e) => e.event === 'stock' && (JSON.parse(e.data) as { released: number }).released === 1,
    );
    expect(JSON.parse(last.data)).toMatchObject({ remaining: 8, accepted: 3, released: 1 });
    stream.close();
  });

  it('honours Last-Event-ID: an up-to-date client gets no snapshot, a stale one gets the current state', async () => {
    await seed(s, { productId: 'resume', stock: 7 });
    const stale = await connectSse(`${api.url}/stock/resume/stream`, { 'last-event-id': '9' });
    expect(stock(await stale.waitFor((e) => e.event === 'stock'))).toMatchObject({ remaining: 7 });

    const current = await connectSse(`${api.url}/stock/resume/stream`, { 'last-event-id': '7' });
    await buy(api, { token: tokenFor('resumer'), productId: 'resume', key: freshKey() });
    const next = await current.waitFor((e) => e.event === 'stock');
    expect(next.id).toBe('6');
    expect(current.events.filter((e) => e.event === 'stock').map((e) => e.id)).toEqual(['6']);
    expect(current.events.find((e) => e.retry !== undefined)?.retry).toBe(2000);
    stale.close();
    current.close();
  });

  it('answers an unknown product with a 404 problem before any stream starts', async () => {
    const c = await connectSse(`${api.url}/stock/ghost/stream`);
    expect(c.status).toBe(404);
    expect(c.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('a process at its client limit answers 200 with a retry hint and closes', async () => {
    const small = await startApi(s, { sse: { budgets: { stock: { total: 2 } } } });
    await seed(s, { productId: 'tiny', stock: 3 });
    const a = await connectSse(`${small.url}/stock/tiny/stream`);
    const b = await connectSse(`${small.url}/stock/tiny/stream`);
    const c = await connectSse(`${small.url}/stock/tiny/stream`);
    expect(c.status).toBe(200);
    await c.ended;
    expect(c.raw()).toBe('retry: 4000\n\n');
    expect(small.app.api.sse.stats.refused).toBe(1);
    a.close();
    b.close();
  });

  it("streams the owner's order: current state first, then its status changes", async () => {
    await seed(s, { productId: 'track', stock: 5 });
    const owner = tokenFor('tracker');
    const accepted = await buy(api, { token: owner, productId: 'track', key: freshKey() });
    const { orderId } = JSON.parse(accepted.body) as { orderId: string };

    const denied = await connectSse(
      `${api.url}/order/${orderId}/stream?access_token=${tokenFor('spy')}`,
    );
    expect(denied.status).toBe(404);
    const anonymous = await connectSse(`${api.url}/order/${orderId}/stream`);
    expect(anonymous.status).toBe(401);

    const stream = await connectSse(`${api.url}/order/${orderId}/stream?access_token=${owner}`);
    expect(stream.status).toBe(200);
    const queued = await stream.waitFor((e) => e.event === 'order_queued');
    expect(JSON.parse(queued.data)).toMatchObject({
      orderId,
      productId: 'track',
      status: 'queued',
    });

    // What the payment worker publishes when the charge succeeds.
    await s.redis.spublish(
      orderEventsChannel(s.keyPrefix, 'track'),
      JSON.stringify({
        orderId,
        userId: 'tracker',
        productId: 'track',
        status: 'paid',
        at: Date.now(),
      }),
    );
    const confirmed = await stream.waitFor((e) => e.event === 'order_confirmed');
    expect(JSON.parse(confirmed.data)).toMatchObject({ orderId, status: 'paid' });
    expect(confirmed.id).toBe('paid');
    stream.close();
  });

  it('ends open streams with a retry hint when the server shuts down', async () => {
    const closing = await startApi(s);
    await seed(s, { productId: 'bye', stock: 1 });
    const c = await connectSse(`${closing.url}/stock/bye/stream`);
    await c.waitFor((e) => e.event === 'stock');
    await closing.app.close();
    await c.ended;
    expect(c.raw().endsWith('retry: 2000\n\n')).toBe(true);
  });

  it('ends a stream at its max age with a retry: 0 hint; the reconnect (Last-Event-ID) gets the current state', async () => {
    const aging = await startApi(s, { sse: { maxAgeMs: 1000 } });
    await seed(s, { productId: 'aged', stock: 5 });
    const first = await connectSse(`${aging.url}/stock/aged/stream`);
    expect((await first.waitFor((e) => e.event === 'stock')).id).toBe('5');
    await first.ended;
    expect(first.raw().endsWith('retry: 0\n\n')).toBe(true);
    expect(aging.app.api.sse.stats.expired).toBe(1);
    expect(aging.app.api.sse.size).toBe(0);

    // The stock changed while it was away: the reconnect gets the current level at once.
    await buy(aging, { token: tokenFor('aged-buyer'), productId: 'aged', key: freshKey() });
    const again = await connectSse(`${aging.url}/stock/aged/stream`, { 'last-event-id': '5' });
    const current = await again.waitFor((e) => e.event === 'stock');
    expect(stock(current)).toMatchObject({ remaining: 4 });
    expect(current.id).toBe('4');
    again.close();

    // An EventSource (what browsers and `fsale watch` use) reconnects by itself after the end.
    const source = new EventSource(`${aging.url}/stock/aged/stream`);
    let opens = 0;
    const reopened = new Promise<void>((resolve) =>
      source.addEventListener('open', () => {
        opens += 1;
        if (opens === 3) resolve();
      }),
    );
    await reopened;
    source.close();
    expect(aging.app.api.sse.stats.expired).toBeGreaterThanOrEqual(3);
  });
});
