import { randomInt } from 'node:crypto';
import { Flags } from '@oclif/core';
import { adminFlags, FsaleCommand, logLevelFlag } from '../cli/base.js';
import { describe, UsageError } from '../domain/errors.js';
import { buildGateway, listenGateway } from '../gateway/app.js';
import { MAX_SEED } from '../gateway/behaviour.js';
import { GatewayMetrics } from '../gateway/metrics.js';
import { metricsAndHealthRoutes, startAdminListener, type AdminListener } from '../server/admin.js';

const speedFlag = Flags.custom<number>({
  parse: async (input) => {
    const speed = Number(input);
    if (input.trim() === '' || !Number.isFinite(speed) || speed <= 0) {
      throw new UsageError(`must be a positive number, got ${JSON.stringify(input)}`);
    }
    return speed;
  },
});

export default class Gateway extends FsaleCommand {
  static override summary = 'Run the mock payment provider that `fsale work payments` charges.';
  static override description = `POST /charges (header Idempotency-Key, body {"orderId", "amountCents"}) answers like a real provider: log-normal latency (median 650 ms, p95 2.3 s, divided by --speed) and, per attempt, 1 % hang (no answer ever; the money was taken or not, 50/50), 2 % 503 and 1 % 429 (transient: nothing is recorded, a retry draws again), 5 % 402 decline, else 201 with a chargeId.

Declines and successes are final: the same key always gets the same answer again and is never charged twice, even when retries arrive concurrently. The same key with a different body is 422.

The ledger answers GET /charges/:key (404 when no money moved, 409 while a charge is in flight) and GET /charges?after=<cursor>&limit=<n> (all of it, in pages), so reconciliation and the audit can learn what really happened. The ledger is in memory: stopping the gateway forgets every charge.

--seed makes the outcomes of every key reproducible, whatever the order in which keys arrive. SIGTERM or SIGINT stops it gracefully: charges in flight are answered at once, hung connections are reset.`;
  static override examples = [
    '<%= config.bin %> gateway',
    '<%= config.bin %> gateway --port 3100 --seed 42 --speed 100',
    '<%= config.bin %> gateway --host 0.0.0.0 --port 0',
    'curl -i -H "Idempotency-Key: order-1" -H "Content-Type: application/json" -d \'{"orderId":"order-1","amountCents":1999}\' http://127.0.0.1:3100/charges',
    'curl http://127.0.0.1:3100/charges/order-1',
  ];
  static override flags = {
    ...adminFlags,
    ...logLevelFlag,
    port: Flags.integer({
      description:
        'port to listen on, 0 for any free one [default: the port of FSALE_GATEWAY_URL, which defaults to http://127.0.0.1:3100]',
      min: 0,
      max: 65535,
    }),
    host: Flags.string({ description: 'address to listen on', default: '127.0.0.1' }),
    seed: Flags.integer({
      description: `seed of the outcomes, 0-${MAX_SEED}: the same seed gives every key the same outcomes [default: random, printed]`,
      min: 0,
      max: MAX_SEED,
    }),
    speed: speedFlag({
      description: 'divides every latency (and Retry-After, at least 1 s): 100 for fast tests',
      default: 1,
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Gateway);
    const config = this.settings({ 'log-level': flags['log-level'] });
    const log = this.logger('gateway', config);
    const port = flags.port ?? gatewayPort(config.gatewayUrl);
    const seed = flags.seed ?? randomInt(0, MAX_SEED + 1);
    const metrics = new GatewayMetrics({ processMetrics: true });
    const app = buildGateway({ seed, speed: flags.speed, metrics, logger: log });

    // Listening for signals before listening for charges: a caller that stops the gateway as
    // soon as it prints its URL must get a graceful stop, not the default kill.
    let stop = (): void => undefined;
    const stopped = new Promise<void>((resolve) => {
      stop = () => {
        // A second signal now finds no handler and kills the process: the way out of a stuck close.
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        resolve();
      };
    });
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);

    let url: string;
    try {
      url = await listenGateway(app, flags.host, port);
    } catch (error) {
      stop();
      await app.close();
      throw new UsageError(`cannot listen on ${flags.host}:${port}: ${describe(error)}`);
    }
    let admin: AdminListener | undefined;
    if (flags['admin-port'] !== undefined) {
      admin = await startAdminListener({
        host: flags['admin-host'],
        port: flags['admin-port'],
        routes: metricsAndHealthRoutes(metrics.registry),
      }).catch(async (error: unknown) => {
        stop();
        await app.close();
        throw error;
      });
      log.info({ url: admin.url }, `admin listener on ${admin.url} (/metrics, /healthz)`);
    }
    log.info(
      { url, seed, speed: flags.speed },
      `gateway listening on ${url} (seed ${seed}, speed ${flags.speed}; ledger in memory)`,
    );
    await stopped;
    await Promise.all([app.close(), admin?.close()]);
  }
}

/** The port FSALE_GATEWAY_URL names, explicitly or by its scheme, so workers and gateway agree. */
function gatewayPort(gatewayUrl: string): number {
  const url = new URL(gatewayUrl);
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}
