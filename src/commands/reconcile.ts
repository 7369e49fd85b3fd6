import { Flags } from '@oclif/core';
import {
  adminFlags,
  stuckAfterFlag,
  JsonLinesCommand,
  gatewayUrlFlag,
  logLevelFlag,
  serviceFlags,
} from '../cli/base.js';
import { durabilityFlags, durabilityOf } from '../cli/durability-flags.js';
import { durationFlag } from '../cli/duration-flag.js';
import { formatDuration } from '../cli/duration.js';
import { adminListener, logStatus, runUntilStopped } from '../cli/long-running.js';
import { addStatusMetrics, workerRegistry } from '../cli/status-metrics.js';
import { PaymentProvider } from '../payments/provider-client.js';
import { withStores } from '../stores.js';
import { rebuildRedis, reconcileOnce, type RebuildReport } from '../workers/reconcile.js';
import {
  addPass,
  noPasses,
  startReconcileWorker,
  type ReconcileTotals,
} from '../workers/reconcile-loop.js';

export default class Reconcile extends JsonLinesCommand {
  static override summary =
    'Settle orders whose payment outcome is unknown, and repair Redis from PostgreSQL.';
  static override description = `For every needs_reconciliation order, voids its idempotency key (the order id) at the gateway, so that a charge request still on its way is refused: a charge that got there first settles it (charged -> paid, declined -> payment_failed); a confirmed void -> payment_failed and the reservation released; a charge still being decided -> the next pass. Then re-applies releases that reached PostgreSQL but not Redis. --once runs one pass and exits; otherwise it runs a pass every --interval.

--rebuild-redis recomputes every product's stock, per-user counts, released set and the idempotency records of accepted orders (without expiry; any other record is dropped, such as the rejections older versions recorded) from PostgreSQL, for after Redis lost writes or an upgrade from a version before issue 14, and exits. Run it while the API is stopped: buys accepted during a rebuild would be overwritten.`;
  static override examples = [
    '<%= config.bin %> reconcile --once',
    '<%= config.bin %> reconcile --interval 5s',
    '<%= config.bin %> reconcile --rebuild-redis --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...adminFlags,
    ...stuckAfterFlag,
    ...gatewayUrlFlag,
    ...logLevelFlag,
    once: Flags.boolean({ description: 'one pass, then exit', exclusive: ['interval'] }),
    interval: durationFlag({ description: 'time between passes', default: 5_000, min: 10 }),
    'rebuild-redis': Flags.boolean({
      description: 'rebuild Redis sale state from PostgreSQL, then exit',
      exclusive: ['once'],
    }),
    ...durabilityFlags(
      'none: a move of units between stock shards left in transit is completed step by step on the masters; replica: each step only once a replica has the step before (WAIT 1), so a failover cannot lose the units or sell them twice; a step no replica acknowledges in --durability-timeout stays in transit for the next pass. Give it the --durability the API runs with',
      'with --durability replica: how long each step of a move waits for a replica',
    ),
  };

  async run(): Promise<ReconcileTotals | RebuildReport> {
    const { flags } = await this.parse(Reconcile);
    const config = this.settings(flags);
    const log = this.logger('reconcile', config);
    const connection = {
      ...config,
      name: 'fsale reconcile',
      poolMax: 4,
      persistent: !flags.once && !flags['rebuild-redis'],
    };
    return withStores(connection, async (stores) => {
      const ctx = {
        ...stores,
        gateway: new PaymentProvider(config.gatewayUrl),
        durability: durabilityOf(flags),
        log,
      };
      if (flags['rebuild-redis']) {
        const report = await rebuildRedis(ctx);
        if (!this.jsonEnabled()) {
          for (const p of report.products) {
            this.log(
              `rebuilt ${p.productId}: stock ${p.stock}, ${p.buyers} buyers, ${p.unpersisted} orders still in the stream`,
            );
          }
        }
        return report;
      }
      if (flags.once) {
        const totals = addPass(noPasses(), await reconcileOnce(ctx));
        if (!this.jsonEnabled()) logStatus(log, 'done', totals, human);
        return totals;
      }
      const worker = startReconcileWorker(ctx, { intervalMs: flags.interval });
      const registry = workerRegistry('reconcile');
      addStatusMetrics(registry, {
        worker: 'reconcile',
        status: () => worker.stats(),
        counters: ['passes', 'paid', 'failed', 'releasesApplied', 'transfersCompleted'],
        // The last pass's backlogs, not counts of events: they go down as well as up.
        names: {
          deferred: 'fsale_reconcile_deferred_orders',
          productsAwaitingReplica: 'fsale_reconcile_products_awaiting_replica',
        },
      });
      const final = await runUntilStopped({
        log,
        intervalMs: flags.interval,
        status: () => worker.stats(),
        human,
        stop: () => worker.stop(),
        started: {
          fields: { intervalMs: flags.interval },
          msg: `reconciling every ${formatDuration(flags.interval)} (Ctrl-C to stop)`,
        },
        onStop: 'finishing the pass in hand',
        admin: adminListener(flags, registry, () => worker.sinceProgressMs()),
      });
      this.resultLogged = true;
      return final;
    });
  }
}

function human(t: ReconcileTotals): string {
  return `passes ${t.passes}: paid ${t.paid} failed ${t.failed} deferred ${t.deferred} releases re-applied ${t.releasesApplied} shard transfers completed ${t.transfersCompleted}, products awaiting a replica ${t.productsAwaitingReplica}`;
}
