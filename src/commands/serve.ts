import cluster from 'node:cluster';
import { isIP } from 'node:net';
import { Flags } from '@oclif/core';
import {
  adminFlags,
  FsaleCommand,
  jwtSecretFlag,
  logLevelFlag,
  serviceFlags,
} from '../cli/base.js';
import { durabilityFlags, durabilityOf } from '../cli/durability-flags.js';
import { durationFlag } from '../cli/duration-flag.js';
import { requireJwtSecret } from '../config.js';
import { DEFAULT_TOKEN_POLICY } from '../auth/tokens.js';
import { UsageError } from '../domain/errors.js';
import { BUY_MODES, DEFAULT_BUY_POLICY } from '../sale/buy.js';
import {
  DEFAULT_BACKPRESSURE,
  DEFAULT_MAX_PG_WAITING,
  DEFAULT_PG_POOL_SIZE,
} from '../server/app.js';
import { DEFAULT_SSE, resolveSseOptions } from '../server/sse-hub.js';
import {
  DEFAULT_ORDER_STREAMS_PER_USER,
  DEFAULT_STOCK_STREAMS_PER_ADDRESS,
  MAX_ORDER_STREAMS,
  MAX_STOCK_STREAMS,
  ORDER_STREAM_SHARE,
  STOCK_STREAM_SHARE,
  openFileLimit,
} from '../server/sse-budget.js';
import { isLoopbackHost, serveSingle, servePrimary, type ServeOptions } from '../server/serve.js';

const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `--trust-proxy`: checked here, because Fastify would throw on a bad entry at start. */
function parseTrustProxy(input: string): string {
  const entries = input.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const ok =
      PROXY_RANGES.has(entry) ||
      (family !== 0 &&
        extra === undefined &&
        (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max)));
    if (!ok)
      throw new UsageError(
        `expected addresses, CIDRs or loopback/linklocal/uniquelocal, got ${JSON.stringify(entry)}`,
      );
  }
  return entries.join(',');
}

/** `{[name]: value}` when the flag was given, else nothing (so the default stays). */
function defined<K extends string>(name: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [name]: value } as Record<K, number>);
}

export default class Serve extends FsaleCommand {
  static override summary = 'Run the HTTP API (POST /order/buy and friends).';
  static override description = `In queue mode (the default) buys are answered from one atomic Redis script (stock, per-user limit, idempotency, order stream) with 202 and persisted later by \`fsale work orders\`. In sync mode (--mode sync, for comparison) each buy is one PostgreSQL transaction (idempotency record, sale window, per-user limit, conditional stock UPDATE, the order INSERTed as pending) answered with 201, then mirrored into Redis for the live stock; no order worker is needed, the payment worker charges the orders in both modes. Routes: POST /order/buy, GET /order/:id, GET /products/:id, GET /stock/:id/stream and GET /order/:id/stream (SSE), GET /healthz, GET /readyz (ready or not, no details) and the storefront page at GET /.

Operator routes are not on the public port: --admin-port starts a second listener (on --admin-host, loopback by default) with GET /metrics (Prometheus), GET /readyz (with the Redis and PostgreSQL errors) and GET /healthz. Under --api-workers N the primary process owns the admin port: its /metrics sums every worker's, its /readyz is ready when all are.

--demo-auth mounts GET /demo/token?user=<id>, which signs a token for ANY user id: anyone who can reach the port can buy as anyone. It is for the storefront on your own machine: serve refuses it on an address other than loopback unless --allow-public-demo-auth is also given, and warns at start either way.

--api-workers N forks N processes that share the port (node:cluster). SIGTERM or SIGINT stops accepting, lets in-flight requests finish, then exits 0.`;
  static override examples = [
    'FSALE_JWT_SECRET=$(openssl rand -hex 32) <%= config.bin %> serve',
    '<%= config.bin %> serve --port 8080 --api-workers 2 --rate-limit 5',
    '<%= config.bin %> serve --max-queue 50000 --max-event-loop-delay 200ms',
    '<%= config.bin %> serve --mode sync --pg-pool-size 16',
    '<%= config.bin %> serve --demo-auth   # then open http://127.0.0.1:3000/?product=p1&user=alice',
    '<%= config.bin %> serve --host 0.0.0.0 --admin-port 9464   # metrics on 127.0.0.1:9464 only',
  ];
  static override flags = {
    ...serviceFlags,
    ...jwtSecretFlag,
    port: Flags.integer({
      description: 'port to listen on; 0 picks a free one [env: PORT, default: 3000]',
      min: 0,
      max: 65535,
    }),
    host: Flags.string({ description: 'address to bind', default: '127.0.0.1' }),
    ...adminFlags,
    ...logLevelFlag,
    'api-workers': Flags.integer({
      description: 'API processes sharing the port (node:cluster)',
      default: 1,
      min: 1,
      max: 64,
      // The old name, still read (with a deprecation warning): `up` and `demo` say --api-workers.
      aliases: ['workers'],
    }),
    mode: Flags.option({
      options: BUY_MODES,
      description: 'queue: Redis reserves, a worker persists (202); sync: one PG transaction (201)',
      default: 'queue' as const,
    })(),
    'pg-pool-size': Flags.integer({
      description: `PostgreSQL connections per process [default: ${DEFAULT_PG_POOL_SIZE.queue} in queue mode, ${DEFAULT_PG_POOL_SIZE.sync} in sync mode]`,
      min: 1,
      max: 200,
    }),
    'max-pg-waiting': Flags.integer({
      description:
        'sync mode: answer 503 while more buys than this wait for a PostgreSQL connection',
      default: DEFAULT_MAX_PG_WAITING,
      min: 0,
    }),
    'rate-limit': Flags.integer({
      description: 'buys per user per product per window (0 disables)',
      default: DEFAULT_BUY_POLICY.rateLimit,
      min: 0,
    }),
    'rate-window': durationFlag({
      description: 'rate limit window',
      default: DEFAULT_BUY_POLICY.rateWindowMs,
      min: 1,
    }),
    'max-queue': Flags.integer({
      description: 'answer 503 while more orders than this wait to be persisted',
      default: DEFAULT_BACKPRESSURE.maxQueue,
      min: 1,
    }),
    'auto-pipelining': Flags.boolean({
      description: 'send the Redis commands of one event-loop turn in one write',
      default: true,
      allowNo: true,
    }),
    ...durabilityFlags(
      'none: a buy is acknowledged (202) once the Redis master has it; replica: only once a replica has it too (WAIT 1), so a failover cannot lose it (503 outcome_unknown when no replica acknowledges in --durability-timeout; a retry with the same key is safe). See README, Durability',
      'with --durability replica: how long a buy waits for a replica',
    ),
    'max-token-ttl': durationFlag({
      description:
        'refuse a token whose exp is further away than this (a leaked long-lived token stays useless)',
      default: DEFAULT_TOKEN_POLICY.maxTtlSeconds * 1000,
      min: 1000,
      unit: 's',
    }),
    'jwt-issuer': Flags.string({
      description: 'when set, a token must carry this iss claim [env: FSALE_JWT_ISSUER]',
      env: 'FSALE_JWT_ISSUER',
    }),
    'jwt-audience': Flags.string({
      description:
        'when set, a token must carry this aud claim (or an array with it) [env: FSALE_JWT_AUDIENCE]',
      env: 'FSALE_JWT_AUDIENCE',
    }),
    'demo-auth': Flags.boolean({
      description:
        'mount GET /demo/token?user=<id> for the storefront page at / (signs tokens for anyone: demos on loopback only)',
    }),
    'allow-public-demo-auth': Flags.boolean({
      description:
        'let --demo-auth run on an address other than loopback (then anyone who reaches it can act as any user)',
      dependsOn: ['demo-auth'],
    }),
    'sse-interval': durationFlag({
      description: 'at most one stock event per client per interval',
      default: DEFAULT_SSE.intervalMs,
      min: 10,
    }),
    'sse-max-stock-streams': Flags.integer({
      description: `anonymous stock streams (GET /stock/:id/stream) per process; beyond it clients get a retry hint [default: ${STOCK_STREAM_SHARE * 100}% of the open-file limit, at most ${MAX_STOCK_STREAMS}; here ${DEFAULT_SSE.budgets.stock.total}]`,
      min: 1,
    }),
    'sse-max-per-ip': Flags.integer({
      description: `stock streams one client address may hold (the address from X-Forwarded-For with --trust-proxy) [default: ${DEFAULT_STOCK_STREAMS_PER_ADDRESS}]`,
      min: 1,
    }),
    'sse-max-order-streams': Flags.integer({
      description: `order streams (GET /order/:id/stream, owners only) per process, a budget of their own [default: ${ORDER_STREAM_SHARE * 100}% of the open-file limit, at most ${MAX_ORDER_STREAMS}; here ${DEFAULT_SSE.budgets.order.total}]`,
      min: 1,
    }),
    'sse-max-per-user': Flags.integer({
      description: `order streams one user may hold [default: ${DEFAULT_ORDER_STREAMS_PER_USER}]`,
      min: 1,
    }),
    'trust-proxy': Flags.custom({
      description:
        'proxies in front of the API whose X-Forwarded-For names the client: comma-separated addresses or CIDRs, or loopback, linklocal, uniquelocal (the per-address limit then counts clients, not the proxy) [default: none]',
      parse: async (input) => parseTrustProxy(input),
    })(),
    'sse-drop-after': durationFlag({
      description: 'an SSE client whose socket has not drained for this long is dropped',
      default: DEFAULT_SSE.dropAfterMs,
      min: 100,
    }),
    // At least a second, so streams are not churned.
    'sse-max-age': durationFlag({
      description:
        'an SSE stream is ended after this long (each client a little sooner, at random), with a retry hint: the client reconnects at once with Last-Event-ID and gets the current state; bounds what a client that stops reading can hold',
      default: DEFAULT_SSE.maxAgeMs,
      min: 1000,
    }),
    'max-event-loop-delay': durationFlag({
      description: 'answer 503 while the event loop p99 delay is above this',
      default: DEFAULT_BACKPRESSURE.maxEventLoopDelayMs,
      min: 1,
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    const config = this.settings(flags);
    const log = this.logger('serve', config);
    if (flags['demo-auth']) {
      if (!isLoopbackHost(flags.host) && !flags['allow-public-demo-auth']) {
        throw new UsageError(
          `--demo-auth signs a token for any user, so it only runs on loopback; --host ${flags.host} is not (add --allow-public-demo-auth if you really mean it)`,
        );
      }
      // Once (cluster workers run this command again), on stderr whatever the log level: no
      // --log-level or LOG_LEVEL may silence it.
      if (cluster.isPrimary)
        process.stderr.write(
          `WARNING: --demo-auth is ON: GET /demo/token signs a token for any user id, so anyone who reaches this API (--host ${flags.host}) can buy as anyone. Never run it in production.\n`,
        );
    }
    const options: ServeOptions = {
      redisUrl: config.redisUrl,
      databaseUrl: config.databaseUrl,
      keyPrefix: config.keyPrefix,
      jwtSecret: requireJwtSecret(config),
      tokenPolicy: {
        maxTtlSeconds: flags['max-token-ttl'],
        issuer: flags['jwt-issuer'],
        audience: flags['jwt-audience'],
      },
      host: flags.host,
      port: config.port,
      workers: flags['api-workers'],
      admin:
        flags['admin-port'] === undefined
          ? undefined
          : { host: flags['admin-host'], port: flags['admin-port'] },
      mode: flags.mode,
      ...(flags['pg-pool-size'] === undefined ? {} : { pgPoolSize: flags['pg-pool-size'] }),
      maxPgWaiting: flags['max-pg-waiting'],
      buyPolicy: {
        rateLimit: flags['rate-limit'],
        rateWindowMs: flags['rate-window'],
        durability: durabilityOf(flags),
      },
      demoAuth: flags['demo-auth'],
      autoPipelining: flags['auto-pipelining'],
      ...(flags['trust-proxy'] === undefined ? {} : { trustProxy: flags['trust-proxy'] }),
      sse: {
        intervalMs: flags['sse-interval'],
        budgets: {
          stock: {
            ...defined('total', flags['sse-max-stock-streams']),
            ...defined('perOwner', flags['sse-max-per-ip']),
          },
          order: {
            ...defined('total', flags['sse-max-order-streams']),
            ...defined('perOwner', flags['sse-max-per-user']),
          },
        },
        dropAfterMs: flags['sse-drop-after'],
        maxAgeMs: flags['sse-max-age'],
      },
      backpressure: {
        maxQueue: flags['max-queue'],
        maxEventLoopDelayMs: flags['max-event-loop-delay'],
      },
      logger: log,
    };
    if (cluster.isPrimary) {
      const { stock, order } = resolveSseOptions(options.sse).budgets;
      log.info(
        { stock, order },
        `SSE budgets: ${stock.total} stock streams (${stock.perOwner} per address), ${order.total} order streams (${order.perOwner} per user), of ${openFileLimit()} open files`,
      );
    }
    const events = {
      listening: (url: string, workers: number) =>
        log.info(
          { url, workers, mode: flags.mode, keyPrefix: config.keyPrefix },
          `listening on ${url} (${workers} process${workers === 1 ? '' : 'es'}, ${flags.mode} mode, prefix ${config.keyPrefix})`,
        ),
      adminListening: (url: string) =>
        log.info({ url }, `admin (metrics, readiness) on ${url} (/metrics, /readyz, /healthz)`),
      stopping: (signal: string) =>
        log.info({ signal }, `${signal} received, finishing in-flight requests`),
      workerExited: (
        pid: number,
        code: number | null,
        signal: string | null,
        restarting: boolean,
      ) => {
        if (restarting)
          log.warn(
            { worker: pid, code, signal },
            `API worker ${pid} died (code ${code}, signal ${signal}); starting a new one`,
          );
      },
    };
    if (flags['api-workers'] > 1 && cluster.isPrimary) {
      await servePrimary(options, events);
      log.info('stopped');
      return;
    }
    await serveSingle(options, events);
  }
}
