import { Flags } from '@oclif/core';
import {
  adminFlags,
  stuckAfterFlag,
  JsonLinesCommand,
  logLevelFlag,
  serviceFlags,
  statusIntervalFlag,
} from '../../cli/base.js';
import { durationFlag } from '../../cli/duration-flag.js';
import { adminListener, runUntilStopped } from '../../cli/long-running.js';
import { addStatusMetrics, workerRegistry } from '../../cli/status-metrics.js';
import { ORDER_GROUP } from '../../redis/keys.js';
import { withStores } from '../../stores.js';
import {
  defaultConsumerName,
  ORDER_WORKER_DEFAULTS,
  orderWorkerFault,
} from '../../workers/order-worker-settings.js';
import { OrderWorkerMetrics } from '../../workers/metrics.js';
import { startOrderWorker, type OrderWorkerStats } from '../../workers/orders.js';

export interface OrderWorkerReport extends OrderWorkerStats {
  /** Orders persisted per second since the previous status record. */
  rate: number;
}

export default class WorkOrders extends JsonLinesCommand {
  static override summary = 'Persist accepted orders from the Redis streams into PostgreSQL.';
  static override description = `Consumes every product's order stream in the consumer group "${ORDER_GROUP}" and writes each batch in one PostgreSQL transaction (insert ON CONFLICT DO NOTHING, then the stock guard), then acknowledges it: a crash at any point redelivers, and a redelivery changes nothing. Entries left pending by a dead worker are taken over after --claim-idle. Entries that are no orders (unparseable) or that PostgreSQL refuses (the stock guard, bad data) go to the product's dead-letter stream (reported by \`fsale audit\`), never dropped; an entry delivered more than --max-deliveries times is persisted on its own, apart from its batch, and dead-lettered only for bad data (deliveries also pile up when workers claim each other's entries through a PostgreSQL outage, which is no fault of the entry's). An order accepted again under an idempotency key an earlier order holds (its Redis record was lost) is superseded: its unit is released and the key answers with the earlier order. Orders are stored as 'pending': the payment worker's queue.

Runs until SIGTERM or SIGINT, then commits and acknowledges the batch in hand and exits 0 (a second signal exits at once; the unacknowledged batch is redelivered). Redis or PostgreSQL outages are logged and retried with backoff. Logs a status record every --status-interval; every record is a JSON line on stdout when stdout is not a terminal or with --json.`;
  static override examples = [
    '<%= config.bin %> work orders',
    '<%= config.bin %> work orders --batch 1000 --consumer orders-1 --json',
    '<%= config.bin %> work orders --claim-idle 10s --max-deliveries 3',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...adminFlags,
    ...stuckAfterFlag,
    ...logLevelFlag,
    batch: Flags.integer({
      description: 'entries read per stream per batch (one PG transaction per batch)',
      default: ORDER_WORKER_DEFAULTS.batch,
      min: 1,
      max: 10_000,
    }),
    concurrency: Flags.integer({
      description: 'batches in flight at once (read and insert the next while one commits)',
      default: ORDER_WORKER_DEFAULTS.concurrency,
      min: 1,
      max: 16,
    }),
    block: durationFlag({
      description: 'how long one read waits for new orders (bounds shutdown time when idle)',
      default: ORDER_WORKER_DEFAULTS.blockMs,
      min: 1,
    }),
    consumer: Flags.string({
      description: 'consumer name in the group, unique per process [default: <hostname>-<pid>]',
    }),
    'claim-idle': durationFlag({
      description: "take over other consumers' entries pending longer than this",
      default: ORDER_WORKER_DEFAULTS.claimIdleMs,
      min: 1,
    }),
    'max-deliveries': Flags.integer({
      description:
        'persist an entry delivered more often than this on its own, apart from its batch',
      default: ORDER_WORKER_DEFAULTS.maxDeliveries,
      min: 1,
    }),
    ...statusIntervalFlag,
  };

  async run(): Promise<OrderWorkerReport> {
    const { flags } = await this.parse(WorkOrders);
    const config = this.settings(flags);
    const consumer = flags.consumer ?? defaultConsumerName();
    const log = this.logger('work orders', config);

    const connection = {
      ...config,
      name: 'fsale work orders',
      poolMax: flags.concurrency + 1,
      persistent: true,
    };
    return withStores(connection, async (stores) => {
      const metrics = new OrderWorkerMetrics(workerRegistry('orders'));
      const worker = startOrderWorker(
        { ...stores, log, metrics },
        {
          consumer,
          batch: flags.batch,
          concurrency: flags.concurrency,
          blockMs: flags.block,
          claimIdleMs: flags['claim-idle'],
          maxDeliveries: flags['max-deliveries'],
          // Test-only crash point (see OrderWorkerFault); unset in production.
          fault: orderWorkerFault(process.env.FSALE_FAULT),
        },
      );
      addStatusMetrics(metrics.registry, {
        worker: 'orders',
        // The worker's own counters, not `report`: a scrape must not restart the rate window of
        // the status records (Prometheus derives rows/s from the counter: rate()).
        status: () => worker.stats(),
        counters: [
          'persisted',
          'duplicates',
          'deadLettered',
          'superseded',
          'claimed',
          'batches',
          'retries',
        ],
        // Since the start of the process, so useless to a scraper: the histogram has them.
        omit: ['batchP50Ms', 'batchP99Ms', 'batchMaxMs'],
      });
      // Only the status records move the rate window.
      let previous = { at: performance.now(), persisted: 0 };
      let stopped = false;
      const report = (): OrderWorkerReport => {
        const stats = worker.stats();
        const now = performance.now();
        const seconds = (now - previous.at) / 1000;
        const rate = seconds > 0 ? Math.round((stats.persisted - previous.persisted) / seconds) : 0;
        previous = { at: now, persisted: stats.persisted };
        return { rate, ...stats };
      };
      const human = (line: OrderWorkerReport) => humanLine(line, stopped);
      const final = await runUntilStopped<OrderWorkerReport>({
        log,
        intervalMs: flags['status-interval'],
        status: report,
        human,
        started: {
          fields: {
            consumer,
            keyPrefix: config.keyPrefix,
            batch: flags.batch,
            concurrency: flags.concurrency,
            claimIdleMs: flags['claim-idle'],
            maxDeliveries: flags['max-deliveries'],
          },
          msg: `consuming orders as ${consumer} (Ctrl-C to stop)`,
        },
        onStop: 'stopping after the batch in hand',
        onExit: 'the batch in hand stays pending and is redelivered',
        admin: adminListener(flags, metrics.registry, () => worker.sinceProgressMs()),

        stop: async () => {
          await worker.stop();
          stopped = true;
        },
        done: worker.done.then(() => {
          stopped = true;
        }),
      });
      this.resultLogged = true;
      return final;
    });
  }
}

function humanLine(line: OrderWorkerReport, stopped: boolean): string {
  const n = (value: number) => value.toLocaleString('en-US');
  return [
    `${stopped ? 'stopped: ' : ''}persisted ${n(line.persisted)}` +
      (stopped ? '' : ` (+${n(line.rate)}/s)`),
    `batches ${n(line.batches)}`,
    `p99 batch ${line.batchP99Ms} ms`,
    `lag ${n(line.lagMs)} ms`,
    `dead-lettered ${n(line.deadLettered)}`,
    `claimed ${n(line.claimed)}`,
    `duplicates ${n(line.duplicates)}`,
  ].join(' · ');
}
