import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanKeys } from '../../src/redis/client.js';
import { mintTokens } from '../../src/auth/tokens.js';
import { send } from '../helpers/http.js';
import { saleState, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

const VALID_KEY = /^[\x20-\x7e]{1,255}$/;

/** Whether the server could accept this as a well-formed buy of the seeded product. */
function isWellFormedBuy(body: unknown, key: string | undefined): boolean {
  if (key === undefined || !VALID_KEY.test(key)) return false;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const { productId, qty, ...rest } = body as Record<string, unknown>;
  return productId === 'fz' && Number.isInteger(qty) && Object.keys(rest).length === 0;
}

describe('malformed requests (property-based)', () => {
  let s: TestServices;
  let api: RunningApi;
  let goodToken: string;
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s);
    await seed(s, { productId: 'fz', stock: 5 });
    goodToken = tokenFor('fuzzer');
  });

  it('2,000+ malformed requests get only 4xx answers and leave Redis and the stream unchanged', async () => {
    const before = {
      state: await saleState(s, 'fz'),
      keys: (await scanKeys(s.redis, `${s.keyPrefix}:*`)).sort(),
    };
    const [otherSecretToken] = mintTokens('another-secret-0123456789abc', ['fuzzer'], 60);

    const token = fc.oneof(
      fc.constant(`Bearer ${goodToken}`),
      fc.constant(`Bearer ${otherSecretToken ?? ''}`),
      fc.constant(undefined),
      fc.string().map((t) => `Bearer ${t}`),
      fc.string({ maxLength: 300 }),
    );
    const key = fc.oneof(
      fc.constant(undefined),
      fc.string({ maxLength: 300 }),
      fc.uuid(),
      fc.constant(''),
    );
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          productId: fc.oneof(
            fc.constant('fz'),
            fc.string(),
            fc.integer(),
            fc.constant('../../etc/passwd'),
          ),
          qty: fc.oneof(
            fc.integer(),
            fc.double(),
            fc.string(),
            fc.constant(Number.MAX_SAFE_INTEGER),
            fc.constant(1e308),
            fc.constant(-0),
          ),
          extra: fc.anything(),
        },
        { requiredKeys: [] },
      ),
    );
    const raw = fc.oneof(
      body.map((b) => JSON.stringify(b)),
      fc.string({ maxLength: 5000 }),
      fc.constant('{"productId":"fz","qty":1'),
      fc.constant('{"__proto__":{"qty":1},"productId":"fz","qty":1}'),
      fc.constant(`{"productId":"fz","qty":1,"pad":"${'x'.repeat(6000)}"}`),
    );
    const contentType = fc.oneof(
      fc.constant('application/json'),
      fc.constant('application/json; charset=utf-8'),
      fc.constant('text/plain'),
      fc.constant(undefined),
      fc.string({ maxLength: 40 }),
    );
    const path = fc.oneof(
      fc.constant('/order/buy'),
      fc.constant('/order/buy/'),
      fc.constant('/order/..%2f..%2fetc%2fpasswd'),
      fc.string().map((p) => `/order/${encodeURIComponent(p)}`),
      fc.string().map((p) => `/products/${encodeURIComponent(p)}`),
      fc.webPath(),
    );
    const method = fc.constantFrom('POST', 'GET', 'PUT', 'DELETE', 'PATCH');

    let sent = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(method, path, token, key, raw, contentType, async (m, p, auth, k, b, ct) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(b);
        } catch {
          parsed = undefined;
        }
        // Reads of public pages are well-formed requests that rightly answer 200: not malformed.
        const pathname = URL.canParse(p, api.url) ? new URL(p, api.url).pathname : p;
        fc.pre(
          !(
            m === 'GET' &&
            ['/', '/app.js', '/healthz', '/readyz', '/metrics', '/products/fz'].includes(pathname)
          ),
        );
        // A well-formed buy of the seeded product would rightly change state: not malformed.
        fc.pre(
          !(
            m === 'POST' &&
            p === '/order/buy' &&
            auth === `Bearer ${goodToken}` &&
            isWellFormedBuy(parsed, k)
          ),
        );
        let response;
        try {
          response = await send(api.url, {
            method: m,
            path: p,
            headers: { authorization: auth, 'idempotency-key': k, 'content-type': ct },
            body: m === 'GET' ? undefined : b,
          });
        } catch {
          return; // Node's client refused to send it (e.g. a control character in a header).
        }
        sent += 1;
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        expect(
          response.status,
          `${m} ${p} -> ${response.status} ${response.body}`,
        ).toBeGreaterThanOrEqual(400);
        expect(response.status, `${m} ${p} -> ${response.status} ${response.body}`).toBeLessThan(
          500,
        );
      }),
      { numRuns: 2600, seed: 20261125 },
    );
    expect(sent).toBeGreaterThanOrEqual(2000);
    expect(await saleState(s, 'fz')).toEqual(before.state);
    const after = (await scanKeys(s.redis, `${s.keyPrefix}:*`)).sort();
    expect(after).toEqual(before.keys);
    // The fuzz reached past authentication, parsing and validation, not only the first gate.
    expect([...statuses.keys()].sort()).toEqual(expect.arrayContaining([400, 401, 404, 415]));
  });
});
