import { Flags } from '@oclif/core';
import {
  adminFlags,
  stuckAfterFlag,
  JsonLinesCommand,
  gatewayUrlFlag,
  logLevelFlag,
  serviceFlags,
  statusIntervalFlag,
} from '../../cli/base.js';
import { durationFlag } from '../../cli/duration-flag.js';
import { adminListener, runUntilStopped } from '../../cli/long-running.js';
import { addStatusMetrics, workerRegistry } from '../../cli/status-metrics.js';
import { PaymentProvider } from '../../payments/provider-client.js';
import { withStores } from '../../stores.js';
import { PaymentWorkerMetrics } from '../../workers/metrics.js';
import {
  PAYMENT_WORKER_DEFAULTS,
  startPaymentWorker,
  type PaymentWorkerStats,
} from '../../workers/payments.js';

export default class WorkPayments extends JsonLinesCommand {
  static override summary = 'Charge persisted orders through the payment gateway.';
  static override description = `Takes pending orders from PostgreSQL (leased, so a crashed worker's jobs are taken over when the lease runs out) and charges each with the order id as the gateway's idempotency key, so a retry or a takeover never charges twice. Outcomes: paid (publishes order_confirmed); declined (payment_failed, and the reservation is released exactly once in PG and Redis, re-opening a sold-out product); 429/503 (retried with exponential backoff and jitter, then handed back for later); timeout or connection error (needs_reconciliation: the stock stays held until \`fsale reconcile\` asks the gateway what happened).

Runs until SIGTERM/SIGINT: in-flight charges get up to --timeout to finish, the rest are handed back. A status record every --status-interval; every record is a JSON line on stdout off a terminal or with --json.`;
  static override examples = [
    '<%= config.bin %> work payments',
    '<%= config.bin %> work payments --concurrency 128 --timeout 3s --gateway-url http://127.0.0.1:3100',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...adminFlags,
    ...stuckAfterFlag,
    ...gatewayUrlFlag,
    ...logLevelFlag,
    concurrency: Flags.integer({
      description: 'charges in flight at once',
      default: PAYMENT_WORKER_DEFAULTS.concurrency,
      min: 1,
      max: 10_000,
    }),
    timeout: durationFlag({
      description: 'no answer after this long and a charge is needs_reconciliation',
      default: PAYMENT_WORKER_DEFAULTS.timeoutMs,
      min: 1,
    }),
    'max-retries': Flags.integer({
      description: 'retries of a 429/503 before handing the job back',
      default: PAYMENT_WORKER_DEFAULTS.maxRetries,
      min: 0,
    }),
    'max-backoff': durationFlag({
      description: 'cap of the backoff between retries',
      default: PAYMENT_WORKER_DEFAULTS.maxBackoffMs,
      min: 1,
    }),
    ...statusIntervalFlag,
  };

  async run(): Promise<PaymentWorkerStats> {
    const { flags } = await this.parse(WorkPayments);
    const config = this.settings(flags);
    const log = this.logger('work payments', config);
    const connection = { ...config, name: 'fsale work payments', poolMax: 10, persistent: true };
    return withStores(connection, async (stores) => {
      const metrics = new PaymentWorkerMetrics(workerRegistry('payments'));
      const worker = startPaymentWorker(
        {
          ...stores,
          gateway: new PaymentProvider(config.gatewayUrl),
          log,
          metrics,
        },
        {
          concurrency: flags.concurrency,
          timeoutMs: flags.timeout,
          maxRetries: flags['max-retries'],
          maxBackoffMs: flags['max-backoff'],
        },
      );
      addStatusMetrics(metrics.registry, {
        worker: 'payments',
        status: () => worker.stats(),
        counters: [
          'claimed',
          'expiredLeases',
          'retries',
          'handedBack',
          'leasesEnded',
          'stale',
          'errors',
        ],
        // Told by fsale_payments_charges_total{outcome}, one counter for every outcome.
        omit: ['paid', 'declined', 'unknown'],
      });
      const gateway = new URL(config.gatewayUrl).origin; // never its credentials, if any
      const final = await runUntilStopped({
        log,
        intervalMs: flags['status-interval'],
        status: () => worker.stats(),
        human: (s) =>
          `paid ${s.paid} declined ${s.declined} unknown ${s.unknown} in flight ${s.inFlight} retries ${s.retries} handed back ${s.handedBack} expired leases ${s.expiredLeases} stale ${s.stale} errors ${s.errors}`,
        stop: () => worker.stop(),
        started: {
          fields: {
            gateway,
            concurrency: flags.concurrency,
            timeoutMs: flags.timeout,
            maxRetries: flags['max-retries'],
          },
          msg: `charging orders through ${gateway} (Ctrl-C to stop)`,
        },
        onStop: 'finishing the charges in flight, handing back the rest',
        admin: adminListener(flags, metrics.registry, () => worker.sinceProgressMs()),
      });
      this.resultLogged = true;
      return final;
    });
  }
}
