import { createHmac, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTokenMinter } from '../../src/auth/tokens.js';
import { productKeys } from '../../src/redis/keys.js';
import { BUY_MODES } from '../../src/sale/buy.js';
import { startAdminListener } from '../../src/server/admin.js';
import { apiAdminRoutes } from '../../src/server/routes/health.js';
import { startFaultProxy, throughProxy } from '../helpers/fault-proxy.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import {
  TEST_JWT_SECRET,
  atFileEnd,
  useTestServices,
  type TestServices,
} from '../helpers/services.js';
import {
  ACCEPTED_ORDER_STATUS,
  ACCEPTED_STATUS,
  fullState,
  pgState,
} from '../helpers/buy-modes.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
function signed(header: object, payload: object, secret = TEST_JWT_SECRET): string {
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;
const problemType = (body: string) => (JSON.parse(body) as { type: string }).type;

describe.each(BUY_MODES)('API routes in %s mode', (mode) => {
  const ACCEPTED = ACCEPTED_STATUS[mode];
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { mode, buyPolicy: { rateLimit: 3, rateWindowMs: 60_000 } });
    await seed(s, {
      productId: 'shoe',
      stock: 50,
      perUserLimit: 10,
      name: 'Red shoe',
      priceCents: 4999,
    });
  });

  describe('JWT negative corpus: every bad token is a 401 and reserves nothing', () => {
    const corpus: [string, () => string | undefined][] = [
      ['no Authorization header', () => undefined],
      ['not a Bearer scheme', () => `Basic ${Buffer.from('a:b').toString('base64')}`],
      [
        'alg none',
        () => `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', exp: inOneHour() })}.`,
      ],
      [
        'alg HS512',
        () => `Bearer ${signed({ alg: 'HS512', typ: 'JWT' }, { sub: 'x', exp: inOneHour() })}`,
      ],
      [
        'alg RS256 header on an HMAC signature',
        () => `Bearer ${signed({ alg: 'RS256', typ: 'JWT' }, { sub: 'x', exp: inOneHour() })}`,
      ],
      ['wrong secret', () => `Bearer ${createTokenMinter('some-other-secret-123456', 60)('x')}`],
      ['expired', () => `Bearer ${signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'x', exp: 1000 })}`],
      ['missing sub', () => `Bearer ${signed({ alg: 'HS256', typ: 'JWT' }, { exp: inOneHour() })}`],
      ['missing exp', () => `Bearer ${signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'x' })}`],
      [
        'sub with key-breaking characters',
        () =>
          `Bearer ${signed({ alg: 'HS256', typ: 'JWT' }, { sub: 'a:{p:b}', exp: inOneHour() })}`,
      ],
      ['truncated signature', () => `Bearer ${tokenFor('x').slice(0, -5)}`],
      ['huge token', () => `Bearer ${'a'.repeat(5000)}.${'b'.repeat(5000)}.c`],
    ];
    it.each(corpus)('%s', async (_name, header) => {
      const before = await fullState(s, 'shoe');
      const r = await send(api.url, {
        method: 'POST',
        path: '/order/buy',
        headers: { authorization: header(), 'idempotency-key': freshKey() },
        body: { productId: 'shoe', qty: 1 },
      });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(problemType(r.body)).toBe('urn:fsale:problem:unauthorized');
      expect(await fullState(s, 'shoe')).toEqual(before);
    });
  });

  describe('GET /order/:id', () => {
    it(`shows the owner their order (${ACCEPTED_ORDER_STATUS[mode]}${mode === 'queue' ? ', then as persisted' : ' at once'}) and is a 404 for anyone else`, async () => {
      const owner = tokenFor('owner');
      const accepted = await buy(api, { token: owner, productId: 'shoe', key: freshKey() });
      const { orderId, statusUrl } = JSON.parse(accepted.body) as {
        orderId: string;
        statusUrl: string;
      };

      const mine = await send(api.url, {
        path: statusUrl,
        headers: { authorization: `Bearer ${owner}` },
      });
      expect(mine.status).toBe(200);
      if (mode === 'queue') {
        expect(JSON.parse(mine.body)).toEqual({ orderId, productId: 'shoe', status: 'queued' });
      } else {
        // Sync mode answers only once the order is committed: it is pending at once.
        expect(JSON.parse(mine.body)).toMatchObject({
          orderId,
          productId: 'shoe',
          qty: 1,
          status: 'pending',
        });
      }

      const theirs = await send(api.url, {
        path: statusUrl,
        headers: { authorization: `Bearer ${tokenFor('thief')}` },
      });
      expect(theirs.status).toBe(404);
      const unknown = await send(api.url, {
        path: `/order/${randomUUID()}`,
        headers: { authorization: `Bearer ${owner}` },
      });
      expect(unknown.status).toBe(404);
      expect(theirs.body).toBe(unknown.body);
      if (mode === 'sync') return;

      // What the order worker does: persist it (pending) in PostgreSQL.
      await s.pool.query(
        `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
         VALUES ($1, 'shoe', 'owner', 1, 'pending', 'k', now())`,
        [orderId],
      );
      const persisted = await send(api.url, {
        path: statusUrl,
        headers: { authorization: `Bearer ${owner}` },
      });
      expect(JSON.parse(persisted.body)).toMatchObject({
        orderId,
        productId: 'shoe',
        qty: 1,
        status: 'pending',
      });
      const stillTheirs = await send(api.url, {
        path: statusUrl,
        headers: { authorization: `Bearer ${tokenFor('thief')}` },
      });
      expect(stillTheirs.status).toBe(404);
    });

    it('needs a token and a well-formed id', async () => {
      expect((await send(api.url, { path: `/order/${randomUUID()}` })).status).toBe(401);
      const bad = await send(api.url, {
        path: '/order/..%2f..%2fetc',
        headers: { authorization: `Bearer ${tokenFor('x')}` },
      });
      expect(bad.status).toBe(400);
    });
  });

  it('GET /products/:id shows the product with live stock', async () => {
    await seed(s, { productId: 'hat', stock: 5, name: 'Hat', priceCents: 999 });
    await buy(api, { token: tokenFor('hatter'), productId: 'hat', key: freshKey() });
    const r = await send(api.url, { path: '/products/hat' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({
      id: 'hat',
      name: 'Hat',
      priceCents: 999,
      stockTotal: 5,
      remaining: 4,
      soldOut: false,
    });
    expect((await send(api.url, { path: '/products/nope' })).status).toBe(404);
  });

  it('rate-limits buys per user with 429 and Retry-After, without reserving', async () => {
    const token = tokenFor('hammer');
    for (let i = 0; i < 3; i++)
      expect((await buy(api, { token, productId: 'shoe', key: freshKey() })).status).toBe(ACCEPTED);
    const before = await fullState(s, 'shoe');
    const limited = await buy(api, { token, productId: 'shoe', key: freshKey() });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(problemType(limited.body)).toBe('urn:fsale:problem:rate_limited');
    expect(await fullState(s, 'shoe')).toEqual(before);
    // Another user is not affected.
    expect(
      (await buy(api, { token: tokenFor('calm'), productId: 'shoe', key: freshKey() })).status,
    ).toBe(ACCEPTED);
  });

  it('a retry of a completed buy is replayed, not rate-limited, and does not use up the window', async () => {
    const token = tokenFor('retrier');
    const key = freshKey();
    const first = await buy(api, { token, productId: 'shoe', key });
    expect(first.status).toBe(ACCEPTED);
    for (let i = 0; i < 5; i++) {
      const again = await buy(api, { token, productId: 'shoe', key });
      expect(again.status).toBe(ACCEPTED);
      expect(again.body).toBe(first.body);
      expect(again.headers['idempotent-replayed']).toBe('true');
    }
    // The window still has two fresh buys left (3 per window, one used).
    for (let i = 0; i < 2; i++)
      expect((await buy(api, { token, productId: 'shoe', key: freshKey() })).status).toBe(ACCEPTED);
    expect((await buy(api, { token, productId: 'shoe', key: freshKey() })).status).toBe(429);
  });

  it.runIf(mode === 'sync')(
    'sync mode answers 503 with Retry-After while more buys than its bound wait for a PostgreSQL connection',
    async () => {
      const small = await startApi(s, { mode, pgPoolSize: 1, maxPgWaiting: 0 });
      await seed(s, { productId: 'queued', stock: 10, perUserLimit: 10 });
      // Hold the API's only PostgreSQL connection, so the next buy waits for it.
      const held = await small.app.api.pool.connect();
      let released = false;
      try {
        const waiting = buy(small, { token: tokenFor('w1'), productId: 'queued', key: freshKey() });
        while (small.app.api.pool.waitingCount === 0) await new Promise((r) => setTimeout(r, 5));
        const refused = await buy(small, {
          token: tokenFor('w2'),
          productId: 'queued',
          key: freshKey(),
        });
        expect(refused.status).toBe(503);
        expect(refused.headers['retry-after']).toBe('1');
        expect(problemType(refused.body)).toBe('urn:fsale:problem:overloaded');
        held.release();
        released = true;
        expect((await waiting).status).toBe(ACCEPTED);
      } finally {
        if (!released) held.release();
      }
      expect((await pgState(s, 'queued'))?.orders).toBe(1);
    },
  );

  it.runIf(mode === 'queue')(
    'answers 503 with Retry-After while the order backlog is above its bound',
    async () => {
      // The bound covers every product under the prefix: start from what is already queued.
      const queued = [...(await api.app.api.backpressure.sample()).queue.values()].reduce(
        (a, b) => a + b,
        0,
      );
      const small = await startApi(s, {
        backpressure: {
          maxQueue: queued + 5,
          maxEventLoopDelayMs: 600_000,
          sampleIntervalMs: 60_000,
        },
      });
      await seed(s, { productId: 'busy', stock: 100, perUserLimit: 100 });
      for (let i = 0; i < 6; i++)
        expect(
          (await buy(small, { token: tokenFor('b'), productId: 'busy', key: freshKey() })).status,
        ).toBe(ACCEPTED);
      await small.app.api.backpressure.sample();
      const before = await fullState(s, 'busy');
      const refused = await buy(small, {
        token: tokenFor('c'),
        productId: 'busy',
        key: freshKey(),
      });
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(problemType(refused.body)).toBe('urn:fsale:problem:overloaded');
      expect(await fullState(s, 'busy')).toEqual(before);
      // The workers catch up (here: the entries are acknowledged) and buys flow again.
      const keys = productKeys(s.keyPrefix, 'busy');
      const read = (await s.redis.xreadgroup(
        'GROUP',
        'persist',
        'test',
        'COUNT',
        100,
        'STREAMS',
        keys.orders,
        '>',
      )) as [string, [string, string[]][]][];
      const ids = read[0]?.[1].map(([id]) => id) ?? [];
      await s.redis.xack(keys.orders, 'persist', ...ids);
      await small.app.api.backpressure.sample();
      expect(
        (await buy(small, { token: tokenFor('c'), productId: 'busy', key: freshKey() })).status,
      ).toBe(ACCEPTED);
    },
  );

  it('rejects non-JSON (415), oversized bodies (413), bad JSON (400) and unknown routes (404) as problem+json', async () => {
    const auth = { authorization: `Bearer ${tokenFor('shape')}`, 'idempotency-key': freshKey() };
    const before = await fullState(s, 'shoe');
    const cases: [Parameters<typeof send>[1], number][] = [
      [
        {
          method: 'POST',
          path: '/order/buy',
          headers: { ...auth, 'content-type': 'text/plain' },
          body: 'productId=shoe',
        },
        415,
      ],
      [
        {
          method: 'POST',
          path: '/order/buy',
          headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
          body: 'productId=shoe&qty=1',
        },
        415,
      ],
      [
        {
          method: 'POST',
          path: '/order/buy',
          headers: auth,
          body: JSON.stringify({ productId: 'shoe', qty: 1, pad: 'x'.repeat(10_000) }),
        },
        413,
      ],
      [
        {
          method: 'POST',
          path: '/order/buy',
          headers: auth,
          body: '{"productId": "shoe", "qty": 1',
        },
        400,
      ],
      [
        {
          method: 'POST',
          path: '/order/buy',
          headers: auth,
          body: '{"__proto__": {"x": 1}, "productId": "shoe", "qty": 1}',
        },
        400,
      ],
      [{ method: 'GET', path: '/admin' }, 404],
      [{ method: 'DELETE', path: '/order/buy' }, 404],
    ];
    for (const [req, status] of cases) {
      const r = await send(api.url, req);
      expect(
        r.status,
        `${req.method ?? 'GET'} ${req.path} ${String(req.headers?.['content-type'])}`,
      ).toBe(status);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    expect(await fullState(s, 'shoe')).toEqual(before);
  });

  it('health and a readiness without details in public; metrics and the checks on the admin listener', async () => {
    expect(JSON.parse((await send(api.url, { path: '/healthz' })).body)).toEqual({ status: 'ok' });
    const ready = await send(api.url, { path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
    expect((await send(api.url, { path: '/metrics' })).status).toBe(404);

    const admin = await startAdminListener({
      host: '127.0.0.1',
      port: 0,
      routes: apiAdminRoutes(api.app.api),
    });
    try {
      expect(JSON.parse((await send(admin.url, { path: '/readyz' })).body)).toEqual({
        status: 'ready',
        checks: { redis: 'ok', postgres: 'ok' },
      });
      await api.app.api.backpressure.sample();
      const metrics = (await send(admin.url, { path: '/metrics' })).body;
      expect(metrics).toMatch(
        new RegExp(`fsale_http_requests_total\\{route="/order/buy",status="${ACCEPTED}"\\} \\d+`),
      );
      expect(metrics).toMatch(/fsale_buy_outcomes_total\{outcome="accepted"\} \d+/);
      expect(metrics).toMatch(
        /fsale_http_request_duration_seconds_bucket\{le="0.005",route="\/order\/buy"\}/,
      );
      expect(metrics).toMatch(/fsale_order_stream_backlog\{product="shoe"\} \d+/);
      expect((await send(admin.url, { method: 'POST', path: '/metrics' })).status).toBe(405);
    } finally {
      await admin.close();
    }
  });
});

describe('readiness when PostgreSQL is out of reach', () => {
  it('the public /readyz answers 503 not_ready with no connection detail; the admin listener says why', async () => {
    const s = await useTestServices();
    const pg = new URL(s.databaseUrl);
    const proxy = await startFaultProxy(pg.hostname, Number(pg.port || 5432));
    atFileEnd(() => proxy.close());
    const api = await startApi(s, { databaseUrl: throughProxy(s.databaseUrl, proxy) });
    await proxy.cut(); // every pooled connection dropped, new ones refused
    const ready = await send(api.url, { path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'not_ready' });
    expect(ready.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|postgres/i);

    const admin = await startAdminListener({
      host: '127.0.0.1',
      port: 0,
      routes: apiAdminRoutes(api.app.api),
    });
    try {
      const detailed = await send(admin.url, { path: '/readyz' });
      expect(detailed.status).toBe(503);
      const body = JSON.parse(detailed.body) as { checks: { redis: string; postgres: string } };
      expect(body.checks.redis).toBe('ok');
      expect(body.checks.postgres).not.toBe('ok');
    } finally {
      await admin.close();
    }
  });
});
