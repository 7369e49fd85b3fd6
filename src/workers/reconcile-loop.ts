// `fsale reconcile --interval`: a reconciliation pass (src/workers/reconcile.ts) every
// interval, on the workers' runtime (src/workers/runtime.ts) like the order and payment
// workers: a stop wakes the pause between passes, a failed pass is logged once per distinct
// error and retried with backoff (capped at the interval), and its recovery is logged.
import type { Logger } from 'pino';
import { integerOption, WorkerRuntime } from './runtime.js';
import {
  emptyReport,
  reconcileOnce,
  type ReconcileContext,
  type ReconcileReport,
} from './reconcile.js';

/**
 * What every pass so far did (`deferred` and `productsAwaitingReplica` are the last pass's:
 * they are a backlog, not a count).
 */
export interface ReconcileTotals extends ReconcileReport {
  passes: number;
}

export function noPasses(): ReconcileTotals {
  return { passes: 0, ...emptyReport() };
}

/** `totals` with one more pass counted. */
export function addPass(totals: ReconcileTotals, pass: ReconcileReport): ReconcileTotals {
  return {
    passes: totals.passes + 1,
    paid: totals.paid + pass.paid,
    failed: totals.failed + pass.failed,
    deferred: pass.deferred,
    releasesApplied: totals.releasesApplied + pass.releasesApplied,
    transfersCompleted: totals.transfersCompleted + pass.transfersCompleted,
    productsAwaitingReplica: pass.productsAwaitingReplica,
  };
}

export interface ReconcileWorker {
  stats(): ReconcileTotals;
  /** How long its loop has gone without progress (WorkerRuntime.sinceProgressMs). */
  sinceProgressMs(): number;
  /** Finishes the pass in hand (if any), then resolves. */
  stop(): Promise<void>;
  done: Promise<void>;
}

export function startReconcileWorker(
  ctx: ReconcileContext & { log: Logger },
  options: { intervalMs: number },
): ReconcileWorker {
  const intervalMs = integerOption('--interval', options.intervalMs, 5_000);
  const runtime = new WorkerRuntime(ctx.log);
  let totals = noPasses();
  const loop = async () => {
    while (!runtime.stopping()) {
      runtime.beat();
      let pass: ReconcileReport;
      try {
        pass = await reconcileOnce({ ...ctx, progress: () => runtime.beat() });
      } catch (error) {
        await runtime.failed('reconcile pass', error, intervalMs);
        continue;
      }
      runtime.recovered('reconcile pass');
      totals = addPass(totals, pass);
      await runtime.pause(intervalMs);
    }
  };
  const done = loop();
  return {
    stats: () => ({ ...totals }),
    sinceProgressMs: () => runtime.sinceProgressMs(),
    async stop() {
      runtime.requestStop();
      await done;
    },
    done,
  };
}
