// What every long-running worker command shares: status records on an interval, and a
// graceful stop on the first SIGTERM/SIGINT (a second one exits at once). A status record is a
// log record (src/cli/log.ts) with an `event` (started, status, stopped, done), the status
// fields, and the human summary of them as its message: a JSON line off a terminal or with
// --json, that summary on a terminal.
import { metricsAndHealthRoutes, startAdminListener, type Liveness } from '../server/admin.js';
import type { Registry } from 'prom-client';
import type { Logger } from './log.js';

export interface LongRunningOptions<S extends object> {
  log: Logger;
  intervalMs: number;
  status: () => S;
  human: (status: S) => string;
  /** Finish or hand back the work in hand; resolves when the process may exit. */
  stop: () => Promise<void>;
  /** Resolves if the work ends by itself (e.g. `reconcile --once`). */
  done?: Promise<void>;
  /** A first record, 'started': its fields and its message. */
  started?: { fields: object; msg: string };
  /** What the first signal does, e.g. "stopping after the batch in hand". */
  onStop?: string;
  /** What an immediate exit on the second signal leaves behind. */
  onExit?: string;
  /**
   * An admin listener (`--admin-port`): GET /metrics from the worker's registry
   * (src/cli/status-metrics.ts) and GET /healthz, for probes and Prometheus.
   */
  admin?: { host: string; port: number; registry: Registry; liveness?: Liveness } | undefined;
}

/**
 * The `admin` option from the --admin-port and --admin-host flags: none without a port. With
 * `sinceProgressMs` (a worker loop's) and --stuck-after, /healthz says when the loop is stuck.
 */
export function adminListener(
  flags: { 'admin-port'?: number | undefined; 'admin-host': string; 'stuck-after'?: number },
  registry: Registry,
  sinceProgressMs?: () => number,
): LongRunningOptions<object>['admin'] {
  const port = flags['admin-port'];
  if (port === undefined) return undefined;
  const stuckAfterMs = flags['stuck-after'];
  return {
    host: flags['admin-host'],
    port,
    registry,
    ...(sinceProgressMs === undefined || stuckAfterMs === undefined
      ? {}
      : { liveness: { sinceProgressMs, stuckAfterMs } }),
  };
}

/** One status record: `event`, the status fields, their human summary as the message. */
export function logStatus<S extends object>(
  log: Logger,
  event: string,
  status: S,
  human: (s: S) => string,
): void {
  const fields: Record<string, unknown> = { event, ...status };
  log.info(fields, human(status));
}

/**
 * Runs until a signal (or `done`), logging status; logs the final status as the 'stopped'
 * record and resolves with it.
 */
export async function runUntilStopped<S extends object>(
  options: LongRunningOptions<S>,
): Promise<S> {
  const { log } = options;
  const admin =
    options.admin === undefined
      ? undefined
      : await startAdminListener({
          host: options.admin.host,
          port: options.admin.port,
          routes: metricsAndHealthRoutes(options.admin.registry, options.admin.liveness),
        });
  if (admin !== undefined)
    log.info({ url: admin.url }, `admin listener on ${admin.url} (/metrics, /healthz)`);
  const timer = setInterval(
    () => logStatus(log, 'status', options.status(), options.human),
    options.intervalMs,
  );
  let stopping: Promise<void> | undefined;
  let signals = 0;
  // Kept until the work has stopped: a second signal while stopping must still exit at once.
  let unlisten = (): void => undefined;
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        log.warn(
          { signal },
          `${signal} again: exiting now${options.onExit === undefined ? '' : `; ${options.onExit}`}`,
        );
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      log.info({ signal }, `${signal}: ${options.onStop ?? 'finishing the work in hand'}`);
      stopping ??= options.stop();
      void stopping.then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // After the handlers: from this record on, a SIGTERM is a clean stop (test helpers and
    // `fsale up` wait for it).
    if (options.started !== undefined)
      log.info({ event: 'started', ...options.started.fields }, options.started.msg);
    void options.done?.then(resolve);
    unlisten = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    };
  });
  clearInterval(timer);
  await stopping;
  unlisten();
  await admin?.close();
  const final = options.status();
  logStatus(log, 'stopped', final, options.human);
  return final;
}
