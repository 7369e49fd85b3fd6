// Scenario 10 — hostile input. Over 10,000 generated requests across every route of a real
// `fsale serve` process: forged and broken JWTs, junk bodies, wrong content types, odd methods,
// path traversal, huge numbers, unicode, Idempotency-Key edge cases, plus raw bytes that are
// not even valid HTTP. Nothing may answer 5xx, no buy may be accepted, the process must stay
// up, and the sale's Redis and PostgreSQL state must be exactly what it was before.
import { connect } from 'node:net';
import { Agent, request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { PRODUCT_ID } from '../../src/domain/ids.js';
import { isAlive, startCli } from '../helpers/process.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, saleState, seed, tokenFor } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { craftJwt } from '../helpers/tokens.js';
import { expectAuditPasses } from '../helpers/audit.js';
import { startApiProcess, stopProcess, type ApiProcess } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const SEED = Number(process.env.FSALE_FUZZ_SEED ?? 20_261_010);
const RUNS = 13_000;
const PRODUCT = 'hx';
const USER = 'hostile-user';
const VALID_KEY = /^[\x20-\x7e]{1,255}$/;

/** A request the generator built, and whether its token is one the API must accept. */
interface Hostile {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  validToken: boolean;
}

interface Answer {
  status: number;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** Sends one request; an event stream is cut after its first bytes so it cannot hang the run. */
function sendHostile(baseUrl: string, r: Hostile): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...r.headers };
    if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
    const req = httpRequest(
      new URL(baseUrl),
      { method: r.method, path: r.path, headers, agent, timeout: 30_000 },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.once('data', (chunk: Buffer) => {
            req.destroy();
            resolve({ status, body: chunk.toString('utf8') });
          });
          res.once('end', () => resolve({ status, body: '' }));
          return;
        }
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within 30 s: ${r.method} ${r.path}`)));
    req.on('error', reject);
    req.end(r.body);
  });
}

/** Raw bytes on a fresh socket; resolves with the status of the answer (0 if closed without). */
function sendRaw(port: number, bytes: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 30 s to raw ${JSON.stringify(bytes.slice(0, 80))}`));
    }, 30_000);
    const finish = () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(received)?.[1] ?? 0);
      resolve({ status, body: received });
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      // One answer is enough; an event stream would never end.
      if (/\r\n\r\n/.test(received) && /text\/event-stream/i.test(received)) socket.destroy();
    });
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.end(bytes);
  });
}

describe('scenario 10: hostile input against every route', () => {
  let s: TestServices;
  let api: ApiProcess;
  let goodToken: string;
  let orderId: string;
  beforeAll(async () => {
    s = await useTestServices();
    // The event-loop bound is for load shedding; here it would turn a slow shared machine into
    // 503s that say nothing about input handling.
    api = await startApiProcess(s.env, ['--max-event-loop-delay', '10m']);
    await seed(s, { productId: PRODUCT, stock: 50, perUserLimit: 5 });
    await seed(s, { productId: 'hx-later', stock: 5, startsAt: new Date(Date.now() + 86_400_000) });
    goodToken = tokenFor(USER);
    // One real order, so GET /order/:id and its stream have something the owner can read.
    const first = await buy(api, { token: goodToken, productId: PRODUCT, key: freshKey() });
    expect(first.status).toBe(202);
    orderId = (JSON.parse(first.body) as { orderId: string }).orderId;
    return () => stopProcess(api);
  });

  it('10,000+ generated requests: no 5xx, no accepted buy, process up, state unchanged', async () => {
    const before = {
      state: await saleState(s, PRODUCT),
      later: await saleState(s, 'hx-later'),
      keys: await durableKeys(s),
      rateKeys: await rateKeys(s),
      orders: (await s.pool.query('SELECT id, status FROM orders ORDER BY id')).rows,
    };

    const now = Math.floor(Date.now() / 1000);
    const hs = { alg: 'HS256', typ: 'JWT' };
    const [otherSecret] = mintTokens('a-different-secret-0123456789', [USER], 600);
    // [token, whether the API must accept it]
    const tokens: [string | undefined, boolean][] = [
      [goodToken, true],
      [craftJwt(hs, { sub: USER, exp: now + 600, pad: 'x'.repeat(2500) }, TEST_JWT_SECRET), true],
      [undefined, false],
      ['', false],
      [otherSecret, false],
      [craftJwt({ alg: 'none', typ: 'JWT' }, { sub: USER, exp: now + 600 }, undefined), false],
      [craftJwt({ alg: 'none' }, { sub: USER, exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt({ alg: 'NONE' }, { sub: USER, exp: now + 600 }, undefined), false],
      [craftJwt(hs, { sub: USER, exp: now - 10 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: USER }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: USER, exp: String(now + 600) }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: '', exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: 42, exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: '../../etc/passwd', exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: 'ünïcødé', exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: USER, exp: now + 600, nbf: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: USER, exp: 1e308 * 10 }, TEST_JWT_SECRET), false],
      [
        craftJwt(
          { alg: 'HS384', typ: 'JWT' },
          { sub: USER, exp: now + 600 },
          TEST_JWT_SECRET,
          'sha384',
        ),
        false,
      ],
      [craftJwt({ alg: 'HS512' }, { sub: USER, exp: now + 600 }, TEST_JWT_SECRET, 'sha512'), false],
      [craftJwt({ alg: 'RS256' }, { sub: USER, exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt({ ...hs, crit: ['exp'] }, { sub: USER, exp: now + 600 }, TEST_JWT_SECRET), false],
      [craftJwt(hs, { sub: USER, exp: now + 600, pad: 'x'.repeat(5000) }, TEST_JWT_SECRET), false],
      [`${goodToken}.`, false],
      [goodToken.split('.').slice(0, 2).join('.'), false],
      [`${goodToken.slice(0, -2)}AA`, false],
      ['a.b.c', false],
      ['....', false],
    ];
    const authorization = fc.oneof(
      fc.constantFrom(...tokens).map(([t, ok]) => ({
        value: t === undefined ? undefined : `Bearer ${t}`,
        ok,
      })),
      fc.constantFrom(...tokens).map(([t]) => ({ value: `bearer ${t ?? ''}`, ok: false })),
      fc.constantFrom(...tokens).map(([t]) => ({ value: `Bearer  ${t ?? ''}`, ok: false })),
      fc.constantFrom(...tokens).map(([t]) => ({ value: `Basic ${t ?? ''}`, ok: false })),
      fc.string({ maxLength: 200 }).map((t) => ({ value: `Bearer ${t}`, ok: false })),
    );

    const idempotencyKey = fc.oneof(
      fc.constant(undefined),
      fc.constant(''),
      fc.constant(' '),
      fc.constant('k'.repeat(255)),
      fc.constant('k'.repeat(256)),
      fc.constant('k'.repeat(5000)),
      fc.constant('ключ-🔑'),
      fc.constant('a\tb'),
      fc.constant('../../etc/passwd'),
      fc.constant('*'),
      fc.uuid(),
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
    );

    const junk = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue(),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    const qty = fc.oneof(
      fc.integer(),
      fc.integer({ min: 1, max: 3 }),
      fc.double(),
      fc.bigInt().map((n) => n.toString()),
      fc.constantFrom(0, -1, 1001, 2 ** 53, 2 ** 53 + 2, -0, 1e308, 1.5, '1', true, null),
      junk,
    );
    const productId = fc.oneof(
      fc.constantFrom(PRODUCT, 'hx-later', 'nope', '', '../hx', 'hx\u0000', 'HX', 'x'.repeat(65)),
      fc.string({ maxLength: 70 }),
      fc.string({ unit: 'grapheme', maxLength: 10 }),
      junk,
    );
    const body = fc.oneof(
      fc.record({ productId, qty }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
      fc
        .record({ productId, qty, extra: junk }, { requiredKeys: ['extra'] })
        .map((b) => JSON.stringify(b)),
      junk.map((b) => JSON.stringify(b)),
      fc.string({ maxLength: 600 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.constantFrom(
        `{"productId":"${PRODUCT}","qty":1`,
        `{"productId":"${PRODUCT}","qty":1e400}`,
        `{"productId":"${PRODUCT}","qty":123456789012345678901234567890}`,
        `{"productId":"${PRODUCT}","qty":1,"qty":2}`,
        `{"__proto__":{"qty":1},"productId":"${PRODUCT}","qty":1}`,
        `{"constructor":{"prototype":{"admin":true}},"productId":"${PRODUCT}","qty":1}`,
        `{"productId":"${PRODUCT}","qty":1,"pad":"${'x'.repeat(6000)}"}`,
        '['.repeat(2000) + ']'.repeat(2000),
        '{"a":'.repeat(800) + '1' + '}'.repeat(800),
        '',
        'null',
        '\uFEFF{}',
      ),
    );
    const contentType = fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=latin1',
        'application/problem+json',
        'text/plain',
        'text/event-stream',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
        '',
      ),
      fc.constant(undefined),
      fc.string({ maxLength: 40 }),
    );
    const junkSegment = fc.oneof(
      fc.string({ maxLength: 80 }).map(encodeURIComponent),
      fc.string({ unit: 'grapheme', maxLength: 20 }).map(encodeURIComponent),
      fc.constantFrom(
        '..',
        '%2e%2e',
        '..%2f..%2fetc%2fpasswd',
        '%00',
        '%',
        '%zz',
        '%C0%AE%C0%AE',
        '..;',
        'x'.repeat(3000),
        '00000000-0000-0000-0000-000000000000',
        '%2F',
      ),
      fc.uuid(),
    );
    const path = fc.oneof(
      fc.constantFrom(
        '/order/buy',
        '/order/buy/',
        '/order/buy?x=1',
        '/order//buy',
        '/ORDER/BUY',
        '/',
        '/index.html',
        '/app.js',
        '/healthz',
        '/readyz',
        '/metrics',
        '/demo/token?user=admin',
        `/products/${PRODUCT}`,
        `/stock/${PRODUCT}/stream`,
        `/order/${orderId}`,
        `/order/${orderId}/stream`,
        `/order/${orderId}/stream?access_token=${goodToken}`,
        '/../../etc/passwd',
        '//etc/passwd',
        '/%2e%2e/%2e%2e/etc/passwd',
        '*',
      ),
      junkSegment.map((x) => `/order/${x}`),
      junkSegment.map((x) => `/order/${x}/stream`),
      junkSegment.map((x) => `/products/${x}`),
      junkSegment.map((x) => `/stock/${x}/stream`),
      junkSegment.map((x) => `/${x}`),
      fc.webPath(),
      fc.webSegment().map((x) => `/order/buy?${x}`),
    );
    const method = fc.constantFrom(
      'GET',
      'GET',
      'POST',
      'POST',
      'POST',
      'PUT',
      'DELETE',
      'PATCH',
      'HEAD',
      'OPTIONS',
      'TRACE',
      'PROPFIND',
    );
    const someHeaders = fc.dictionary(
      fc.constantFrom(
        'accept',
        'last-event-id',
        'content-encoding',
        'x-forwarded-for',
        'origin',
        'cookie',
        'range',
        'expect',
        'x-http-method-override',
      ),
      fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.constantFrom('gzip', 'text/event-stream', '100-continue', 'DELETE', 'bytes=0-1'),
      ),
      { maxKeys: 2 },
    );
    const extraHeaders = fc.oneof(
      { arbitrary: fc.constant({}), weight: 3 },
      { arbitrary: someHeaders, weight: 1 },
    );
    const request: fc.Arbitrary<Hostile> = fc
      .tuple(method, path, authorization, idempotencyKey, body, contentType, extraHeaders)
      .map(([m, p, auth, key, b, ct, extra]) => {
        const headers: Record<string, string> = { ...extra };
        if (auth.value !== undefined) headers.authorization = auth.value;
        if (key !== undefined) headers['idempotency-key'] = key;
        if (ct !== undefined) headers['content-type'] = ct;
        const bodyless = m === 'GET' || m === 'HEAD';
        return { method: m, path: p, headers, body: bodyless ? undefined : b, validToken: auth.ok };
      });

    // Bytes no HTTP client library would send: broken framing, oversized heads, smuggling.
    const rawRequests = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 400 }).map((x) => `${x}\r\n\r\n`),
      fc.constantFrom(
        'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
        'POST /order/buy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        'POST /order/buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
        'POST /order/buy HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n',
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n',
        'GET /healthz\r\n\r\n',
        'BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /order/buy HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\u0000b\r\n\r\n',
        'POST /order/buy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u00ff\u00fe\r\nContent-Length: 2\r\n\r\n{}',
        `POST /order/buy HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
        'GET /stock/hx/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \u00ff\r\n\r\n',
        'GET / HTTP/1.1\r\n\r\n',
        'GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n',
        'CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n',
      ),
    );
    const port = Number(new URL(api.url).port);

    let sent = 0;
    let refusedByClient = 0;
    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const checkAnswer = (what: string, answer: Answer) => {
      expect(
        answer.status,
        `${what} -> ${answer.status} ${answer.body.slice(0, 300)}`,
      ).toBeLessThan(500);
    };

    await fc
      .assert(
        fc.asyncProperty(
          fc.oneof({ arbitrary: request, weight: 19 }, { arbitrary: rawRequests, weight: 1 }),
          async (r) => {
            if (typeof r === 'string') {
              const answer = await sendRaw(port, r);
              sent += 1;
              if (answer.status !== 0) count(answer.status);
              checkAnswer(`raw ${JSON.stringify(r.slice(0, 120))}`, answer);
              return;
            }
            // A well-formed buy with a token the API accepts could rightly reserve stock: it is
            // not hostile. Everything else must be refused without a trace.
            const pathname = r.path.split('?')[0];
            let parsed: unknown;
            try {
              parsed = JSON.parse(r.body ?? '');
            } catch {
              parsed = undefined;
            }
            const wellFormed =
              typeof parsed === 'object' &&
              parsed !== null &&
              typeof (parsed as { productId?: unknown }).productId === 'string' &&
              PRODUCT_ID.test((parsed as { productId: string }).productId) &&
              Number.isInteger((parsed as { qty?: unknown }).qty);
            fc.pre(
              !(
                r.method === 'POST' &&
                pathname === '/order/buy' &&
                r.validToken &&
                wellFormed &&
                VALID_KEY.test(r.headers['idempotency-key'] ?? '')
              ),
            );
            let answer: Answer;
            try {
              answer = await sendHostile(api.url, r);
            } catch (error) {
              // Node's client refuses some values itself (control characters in a header, a
              // method that is not a token): nothing reached the server.
              if ((error as NodeJS.ErrnoException).code?.startsWith('ERR_') === true) {
                refusedByClient += 1;
                return;
              }
              throw error;
            }
            sent += 1;
            count(answer.status);
            const what = `${r.method} ${r.path} ${JSON.stringify(r.headers).slice(0, 300)} ${(r.body ?? '').slice(0, 200)}`;
            checkAnswer(what, answer);
            // No buy gets through: every accepted-looking answer would be a reservation.
            if (pathname === '/order/buy') expect(answer.status, what).not.toBe(202);
          },
        ),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      )
      .catch((error: unknown) => {
        throw new Error(
          `hostile input failed (reproduce with FSALE_FUZZ_SEED=${SEED}): ${String(error)}`,
        );
      });
    console.log(
      `scenario 10: ${sent} requests sent (${refusedByClient} refused by Node's client), seed ${SEED}, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    expect(sent).toBeGreaterThanOrEqual(10_000);

    // The process is the one we started, and it still answers.
    expect(isAlive(api.pid)).toBe(true);
    expect(api.child.exitCode).toBeNull();
    expect((await send(api.url, { path: '/healthz' })).status).toBe(200);
    expect((await send(api.url, { path: '/readyz' })).status).toBe(200);

    // Rejected requests left no trace in Redis or PostgreSQL.
    expect(await saleState(s, PRODUCT)).toEqual(before.state);
    expect(await saleState(s, 'hx-later')).toEqual(before.later);
    expect(await durableKeys(s)).toEqual(before.keys);
    // Rate-limit counters expire by themselves; a rejected request must not have made one.
    for (const key of await rateKeys(s)) expect(before.rateKeys).toContain(key);
    expect((await s.pool.query('SELECT id, status FROM orders ORDER BY id')).rows).toEqual(
      before.orders,
    );
    // The fuzz went past every gate: auth, parsing, validation, routing, size and type limits.
    expect([...statuses.keys()]).toEqual(expect.arrayContaining([200, 400, 401, 404, 413, 415]));

    // And the API still sells: a valid buy after the storm is accepted.
    const after = await buy(api, { token: goodToken, productId: PRODUCT, key: freshKey() });
    expect(after.status, after.body).toBe(202);
    // The audit, once an order worker has persisted the two real orders.
    const worker = startCli(['work', 'orders'], s.env);
    try {
      await until(
        'the order worker to persist the two accepted orders',
        async () => {
          const { rows } = await s.pool.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM orders',
          );
          return rows[0]?.n === 2;
        },
        60_000,
      );
    } finally {
      await stopProcess(worker);
    }
    await expectAuditPasses(s);
  });
});

/** Every key of this file's prefix except the self-expiring rate-limit counters. */
async function durableKeys(s: TestServices): Promise<string[]> {
  return (await s.redis.keys(`${s.keyPrefix}:*`)).filter((k) => !k.includes(':rate:')).sort();
}

async function rateKeys(s: TestServices): Promise<string[]> {
  return (await s.redis.keys(`${s.keyPrefix}:*`)).filter((k) => k.includes(':rate:')).sort();
}
