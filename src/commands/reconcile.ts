import { Flags } from '@oclif/core';
import { adminFlags, JsonLinesCommand, gatewayUrlFlag, serviceFlags } from '../cli/base.js';
import { durationFlag } from '../cli/duration-flag.js';
import { adminListener, printStatus, runUntilStopped } from '../cli/long-running.js';
import { PaymentProvider } from '../payments/provider-client.js';
import { withStores } from '../stores.js';
import {
  rebuildRedis,
  reconcileOnce,
  type RebuildReport,
  type ReconcileReport,
} from '../workers/reconcile.js';

interface Totals extends ReconcileReport {
  passes: number;
}

export default class Reconcile extends JsonLinesCommand {
  static override summary =
    'Settle orders whose payment outcome is unknown, and repair Redis from PostgreSQL.';
  static override description = `For every needs_reconciliation order, voids its idempotency key (the order id) at the gateway, so that a charge request still on its way is refused: a charge that got there first settles it (charged -> paid, declined -> payment_failed); a confirmed void -> payment_failed and the reservation released; a charge still being decided -> the next pass. Then re-applies releases that reached PostgreSQL but not Redis. --once runs one pass and exits; otherwise it runs a pass every --interval.

--rebuild-redis recomputes every product's stock, per-user counts, released set and the idempotency records of accepted orders from PostgreSQL (for after Redis lost its data) and exits. Run it while the API is stopped: buys accepted during a rebuild would be overwritten.`;
  static override examples = [
    '<%= config.bin %> reconcile --once',
    '<%= config.bin %> reconcile --interval 5s',
    '<%= config.bin %> reconcile --rebuild-redis --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...adminFlags,
    ...gatewayUrlFlag,
    once: Flags.boolean({ description: 'one pass, then exit', exclusive: ['interval'] }),
    interval: durationFlag({ description: 'time between passes', default: 5_000, min: 10 }),
    'rebuild-redis': Flags.boolean({
      description: 'rebuild Redis sale state from PostgreSQL, then exit',
      exclusive: ['once'],
    }),
  };

  async run(): Promise<Totals | RebuildReport> {
    const { flags } = await this.parse(Reconcile);
    const config = this.settings(flags);
    const jsonLines = this.jsonEnabled() || !process.stdout.isTTY;
    const connection = {
      ...config,
      name: 'fsale reconcile',
      poolMax: 4,
      persistent: !flags.once && !flags['rebuild-redis'],
    };
    return withStores(connection, async (stores) => {
      const ctx = { ...stores, gateway: new PaymentProvider(config.gatewayUrl) };
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
      const totals: Totals = {
        passes: 0,
        paid: 0,
        failed: 0,
        deferred: 0,
        releasesApplied: 0,
        transfersCompleted: 0,
      };
      const human = (t: Totals) =>
        `passes ${t.passes}: paid ${t.paid} failed ${t.failed} deferred ${t.deferred} releases re-applied ${t.releasesApplied} shard transfers completed ${t.transfersCompleted}`;
      const pass = async () => {
        const r = await reconcileOnce(ctx);
        totals.passes += 1;
        totals.paid += r.paid;
        totals.failed += r.failed;
        totals.deferred = r.deferred;
        totals.releasesApplied += r.releasesApplied;
        totals.transfersCompleted += r.transfersCompleted;
      };
      if (flags.once) {
        await pass();
        if (!this.jsonEnabled()) printStatus(jsonLines, 'done', totals, human);
        return totals;
      }
      const stop = new AbortController();
      let wake: () => void = () => undefined;
      const loop = (async () => {
        while (!stop.signal.aborted) {
          await pass().catch((error: unknown) =>
            process.stderr.write(`fsale reconcile: pass failed: ${String(error)}\n`),
          );
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, flags.interval);
          });
        }
      })();
      return await runUntilStopped({
        name: 'fsale reconcile',
        printFinal: !this.jsonEnabled(),
        jsonLines,
        intervalMs: flags.interval,
        status: () => ({ ...totals }),
        human,
        stop: async () => {
          stop.abort();
          wake();
          await loop;
        },
        admin: adminListener(flags, {
          worker: 'reconcile',
          counters: [
            'passes',
            'paid',
            'failed',
            'deferred',
            'releasesApplied',
            'transfersCompleted',
          ],
        }),
      });
    });
  }
}
