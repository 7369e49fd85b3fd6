// A running API on a free port over this test file's prefix and database.
import { mintTokens } from '../../src/auth/tokens.js';
import { buildApp, type App, type AppOptions } from '../../src/server/app.js';
import { scanKeys } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { seedProduct, type SeedInput } from '../../src/sale/seed.js';
import { send, type HttpResponse } from './http.js';
import { TEST_JWT_SECRET, atFileEnd, type TestServices } from './services.js';

export interface RunningApi {
  app: App;
  url: string;
}

export async function startApi(
  s: TestServices,
  overrides: Partial<AppOptions> = {},
): Promise<RunningApi> {
  const app = await buildApp({
    redisUrl: s.redisUrl,
    databaseUrl: s.databaseUrl,
    keyPrefix: s.keyPrefix,
    jwtSecret: TEST_JWT_SECRET,
    // The test's own client shares this event loop: only the queue bound applies by default.
    backpressure: { maxEventLoopDelayMs: 600_000 },
    ...overrides,
  });
  // A crowd test opens 2,000 sockets at once: past Node's default backlog (511) a loaded machine
  // resets the connections it could not accept in time (ECONNRESET, seen under load 12).
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 });
  atFileEnd(() => app.close());
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { app, url: `http://127.0.0.1:${address.port}` };
}

export function seed(s: TestServices, input: SeedInput) {
  return seedProduct({ pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix }, input);
}

export function tokenFor(userId: string, ttlSeconds = 3600): string {
  return mintTokens(TEST_JWT_SECRET, [userId], ttlSeconds)[0] ?? '';
}

let keyCounter = 0;
export function freshKey(): string {
  keyCounter += 1;
  return `key-${process.pid}-${keyCounter}-${Math.random().toString(36).slice(2)}`;
}

export interface BuyArgs {
  token: string;
  productId: string;
  qty?: number;
  key?: string | undefined;
}

export function buy(api: { url: string }, args: BuyArgs): Promise<HttpResponse> {
  return send(api.url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${args.token}`, 'idempotency-key': args.key },
    body: { productId: args.productId, qty: args.qty ?? 1 },
  });
}

/** Everything a rejected request must leave unchanged. */
export async function saleState(s: TestServices, productId: string) {
  const keys = productKeys(s.keyPrefix, productId);
  const [stock, streamLength, bought, owners, idempotencyRecords] = await Promise.all([
    s.redis.get(keys.stock),
    s.redis.xlen(keys.orders),
    s.redis.hgetall(keys.bought),
    s.redis.hlen(keys.owners),
    scanKeys(s.redis, `${keys.idempotencyPrefix}*`).then((k) => k.length),
  ]);
  return { stock, streamLength, bought, owners, idempotencyRecords };
}
