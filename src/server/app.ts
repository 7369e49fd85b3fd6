import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import { connectPostgres, type Pool } from '../db/pool.js';
import { isServiceOutage } from '../domain/errors.js';
import { keyedOrderIds, type OrderIdOf } from '../domain/order-id.js';
import { connectRedis, type Redis } from '../redis/client.js';
import { connectBuyPath, type BuyPathRedis } from '../redis/resp-cluster.js';
import { isProductSeeded, stockLevels } from '../redis/sale-state.js';
import { DEFAULT_BUY_POLICY, type BuyMode, type BuyPolicy } from '../sale/buy.js';
import { StockMirror } from '../sale/sync-buy.js';
import type { TokenPolicy } from '../auth/tokens.js';
import { createAuthenticate } from './auth.js';
import { Backpressure, type BackpressureOptions } from './backpressure.js';
import { ApiMetrics } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { echoRequestId, requestId } from './request-id.js';
import { ProblemError, sendProblem, type ProblemType } from './problems.js';
import { buyRoutes } from './routes/buy.js';
import { healthRoutes, sharedReadiness, type Readiness } from './routes/health.js';
import { orderRoutes } from './routes/orders.js';
import { productRoutes } from './routes/products.js';
import {
  DEFAULT_PRODUCT_SNAPSHOTS,
  ProductSnapshots,
  type ProductSnapshotOptions,
} from './product-snapshots.js';
import { SoldOutCache } from './sold-out.js';
import { SseHub, resolveSseOptions, type SseHubSettings } from './sse-hub.js';
import { streamRoutes } from './routes/streams.js';
import { storefrontRoutes } from './routes/storefront.js';
import { SaleFeed } from './sale-feed.js';
import { StockLayouts } from '../sale/stock-shards.js';

export interface AppOptions {
  redisUrl: string;
  databaseUrl: string;
  keyPrefix: string;
  jwtSecret: string;
  /** Token lifetime bound and optional iss/aud checks (default: 24 h, no iss/aud). */
  tokenPolicy?: TokenPolicy;
  buyPolicy?: Partial<BuyPolicy>;
  backpressure?: Partial<BackpressureOptions>;
  /** Largest accepted request body, bytes. */
  bodyLimit?: number;
  sse?: SseHubSettings;
  /**
   * Proxies whose X-Forwarded-For is believed (comma-separated addresses, CIDRs, or
   * `loopback`/`linklocal`/`uniquelocal`), so per-address limits see the client, not nginx.
   */
  trustProxy?: string | undefined;
  /** Mount GET /demo/token?user= for the storefront page (signs a token for anyone: demos only). */
  demoAuth?: boolean;
  /** Send the Redis commands of one event-loop turn in one write (default on). */
  autoPipelining?: boolean;
  /** `queue` (default): Redis reserves, a worker persists (202). `sync`: one PG transaction (201). */
  mode?: BuyMode;
  /**
   * PostgreSQL connections per process (default 5 in queue mode, where the API only reads, and
   * 10 in sync mode). Every sync buy of one product waits for that product's row lock, so
   * connections beyond a few per core add waiting, not throughput.
   */
  pgPoolSize?: number;
  /** Sync mode: answer 503 while more buys than this wait for a PostgreSQL connection. */
  maxPgWaiting?: number;
  /** How GET /products/:id caches what it reads from PostgreSQL. */
  productSnapshots?: Partial<ProductSnapshotOptions>;
  /** The process's logger (src/cli/log.ts); without one, Fastify's own at level warn. */
  logger?: Logger | undefined;
}

/**
 * The API's dependencies, one value for every route (`app.api`): the clients, the key prefix
 * and the process-wide state the routes share (caches, backpressure, metrics, SSE hub).
 */
export interface ApiContext {
  redis: Redis;
  /** The buy path's own lean connection (src/redis/resp-client.ts): the buy script and replays. */
  buyRedis: BuyPathRedis;
  pool: Pool;
  keyPrefix: string;
  feed: SaleFeed;
  soldOut: SoldOutCache;
  /** GET /products/:id's PostgreSQL reads, cached (see product-snapshots.ts). */
  products: ProductSnapshots;
  /** The public GET /readyz's check, shared: at most one a second (see routes/health.ts). */
  readiness: () => Promise<Readiness>;
  backpressure: Backpressure;
  metrics: ApiMetrics;
  policy: BuyPolicy;
  /** A keyed buy's order id, the same for every retry (keyed with the JWT secret). */
  orderIdOf: OrderIdOf;
  authenticate: ReturnType<typeof createAuthenticate>;
  /** The same, also accepting `?access_token=` (EventSource cannot send headers). */
  authenticateStream: ReturnType<typeof createAuthenticate>;
  sse: SseHub;
  mode: BuyMode;
  /** Sync mode: mirrors committed orders into Redis (see src/sale/sync-buy.ts). */
  mirror: StockMirror;
  /** The sharded products' layouts (src/sale/stock-shards.ts). */
  layouts: StockLayouts;
  maxPgWaiting: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    api: ApiContext;
  }
}

export type App = FastifyInstance;

export const DEFAULT_PG_POOL_SIZE: Readonly<Record<BuyMode, number>> = { queue: 5, sync: 10 };
export const DEFAULT_MAX_PG_WAITING = 1_000;

export const DEFAULT_BACKPRESSURE: BackpressureOptions = {
  maxQueue: 200_000,
  maxEventLoopDelayMs: 500,
  sampleIntervalMs: 250,
};

const STATUS_PROBLEM: Record<number, ProblemType> = {
  400: 'bad_request',
  401: 'unauthorized',
  // No 405: Fastify answers a method a path does not have with its not-found handler.
  404: 'not_found',
  413: 'body_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** The logger as Fastify's base type: App is typed with it, not with pino's own. */
function baseLogger(logger: FastifyBaseLogger): FastifyBaseLogger {
  return logger;
}

/** Builds the API as a Fastify instance; call `listen` or `inject` on it. Closes its clients on close. */
export async function buildApp(options: AppOptions): Promise<App> {
  const app = Fastify({
    ...(options.logger === undefined
      ? { logger: { level: 'warn' } }
      : { loggerInstance: baseLogger(options.logger) }),
    // No per-request log lines at the default level: at 10k req/s they would cost more than
    // the buy itself. At debug the onResponse hook below logs one per request.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    genReqId: requestId,
    bodyLimit: options.bodyLimit ?? 4096,
    // A client must send its whole request within 10 s (Slowloris), and idle sockets go.
    connectionTimeout: 30_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ...(options.trustProxy === undefined ? {} : { trustProxy: options.trustProxy }),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const mode = options.mode ?? 'queue';
  const pool = await connectPostgres(options.databaseUrl, {
    max: options.pgPoolSize ?? DEFAULT_PG_POOL_SIZE[mode],
    applicationName: 'fsale serve',
  });
  let redis: Redis | undefined;
  let buyRedis: BuyPathRedis | undefined;
  let feed: SaleFeed | undefined;
  try {
    // Sync mode's rate limit and mirror commands go through ioredis: batched the same way.
    const batch = options.autoPipelining ?? true;
    redis = await connectRedis(options.redisUrl, {
      name: 'fsale-api',
      persistent: true,
      autoPipelining: batch,
    });
    buyRedis = await connectBuyPath(options.redisUrl, { name: 'fsale-api-buy', batch });
    feed = await SaleFeed.open(options.redisUrl, options.keyPrefix, redis);
  } catch (error) {
    redis?.disconnect();
    buyRedis?.disconnect();
    await pool.end();
    throw error;
  }
  const layouts = new StockLayouts(redis, options.keyPrefix);
  const backpressure = new Backpressure(redis, options.keyPrefix, {
    ...DEFAULT_BACKPRESSURE,
    ...options.backpressure,
  });
  const sse = new SseHub(resolveSseOptions(options.sse));
  const metrics = new ApiMetrics({
    backpressure,
    sse,
    stock: () => stockLevels(redis, options.keyPrefix),
  });
  const api: ApiContext = {
    redis,
    buyRedis,
    pool,
    keyPrefix: options.keyPrefix,
    feed,
    soldOut: new SoldOutCache(feed),
    products: new ProductSnapshots(pool, (id) => isProductSeeded(redis, options.keyPrefix, id), {
      ...DEFAULT_PRODUCT_SNAPSHOTS,
      ...options.productSnapshots,
    }),
    readiness: sharedReadiness({ redis, pool }),
    backpressure,
    metrics,
    policy: { ...DEFAULT_BUY_POLICY, ...options.buyPolicy },
    orderIdOf: keyedOrderIds(options.jwtSecret),
    authenticate: createAuthenticate(options.jwtSecret, { policy: options.tokenPolicy }),
    authenticateStream: createAuthenticate(options.jwtSecret, {
      allowQueryToken: true,
      policy: options.tokenPolicy,
    }),
    sse,
    mode,
    mirror: new StockMirror(redis, options.keyPrefix),
    layouts,
    maxPgWaiting: options.maxPgWaiting ?? DEFAULT_MAX_PG_WAITING,
  };
  app.decorate('api', api);
  app.decorateRequest('userId', '');

  // JSON only: Fastify also parses text/plain by default.
  app.removeContentTypeParser('text/plain');

  echoRequestId(app);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, status: reply.statusCode });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    request.log.debug(
      { method: request.method, route, statusCode: reply.statusCode, ms: reply.elapsedTime },
      'request completed',
    );
    done();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ProblemError) {
      return sendProblem(reply, error.type, error.detail, error.retryAfterSeconds);
    }
    if (error.validation !== undefined) {
      return sendProblem(
        reply,
        'bad_request',
        `${error.validationContext ?? 'request'} ${error.message}`,
      );
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return sendProblem(reply, STATUS_PROBLEM[status] ?? 'bad_request', error.message);
    }
    if (isServiceOutage(error)) return sendProblem(reply, 'unavailable', undefined, 1);
    request.log.error({ err: error, url: request.url }, 'unhandled error');
    return sendProblem(reply, 'internal');
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      'not_found',
      `no route ${request.method} ${request.url.split('?')[0] ?? ''}`,
    ),
  );

  // Streams never finish by themselves: end them (with a retry hint) before the server waits
  // for open connections to close.
  app.addHook('preClose', async () => api.sse.close());
  // Sampled from the moment the API is ready: the loop is busy while the routes and their
  // schemas compile, and that must not read as overload to the first requests.
  app.addHook('onReady', async () => backpressure.start());
  app.addHook('onClose', async () => {
    backpressure.stop();
    // Before Redis closes: committed sync orders still waiting for their mirror get a last try.
    await api.mirror.close();
    feed.close();
    await redis.quit().catch(() => redis.disconnect());
    await buyRedis.quit();
    await pool.end();
  });

  // Before the routes: the generator records each route as it is added.
  await registerOpenApi(app);
  await app.register(healthRoutes);
  await app.register(buyRoutes);
  await app.register(orderRoutes);
  await app.register(productRoutes);
  await app.register(streamRoutes);
  await app.register(storefrontRoutes, {
    demoAuth: options.demoAuth === true,
    jwtSecret: options.jwtSecret,
  });
  return app;
}
