// What every long-running worker command shares: status lines on an interval (JSON lines when
// stdout is not a terminal or with --json, a short human line otherwise), and a graceful stop
// on the first SIGTERM/SIGINT (a second one exits at once).
import { metricsAndHealthRoutes, startAdminListener } from '../server/admin.js';
import { statusRegistry } from './status-metrics.js';

export interface LongRunningOptions<S extends object> {
  name: string;
  jsonLines: boolean;
  intervalMs: number;
  status: () => S;
  human: (status: S) => string;
  /** Finish or hand back the work in hand; resolves when the process may exit. */
  stop: () => Promise<void>;
  /** Resolves if the work ends by itself (e.g. `reconcile --once`). */
  done?: Promise<void>;
  /** Print a final 'stopped' line (off when oclif's --json prints the returned status). */
  printFinal: boolean;
  /** A first line: `json` as a 'started' JSON line, `human` on a terminal. */
  started?: { json: object; human: string };
  /** What the first signal does, e.g. "stopping after the batch in hand". */
  onStop?: string;
  /** What an immediate exit on the second signal leaves behind. */
  onExit?: string;
  /**
   * An admin listener (`--admin-port`): GET /metrics from the status (`metrics.counters` are
   * the status fields that only grow) and GET /healthz, for probes and Prometheus.
   */
  admin?:
    | { host: string; port: number; metrics: { worker: string; counters: readonly string[] } }
    | undefined;
}

/** The `admin` option from the --admin-port and --admin-host flags: none without a port. */
export function adminListener(
  flags: { 'admin-port'?: number | undefined; 'admin-host': string },
  metrics: { worker: string; counters: readonly string[] },
): LongRunningOptions<object>['admin'] {
  const port = flags['admin-port'];
  return port === undefined ? undefined : { host: flags['admin-host'], port, metrics };
}

export function printStatus<S extends object>(
  jsonLines: boolean,
  event: string,
  status: S,
  human: (s: S) => string,
): void {
  const line = jsonLines
    ? JSON.stringify({ ts: new Date().toISOString(), event, ...status })
    : human(status);
  process.stdout.write(`${line}\n`);
}

/** Runs until a signal (or `done`), printing status; resolves with the final status. */
export async function runUntilStopped<S extends object>(
  options: LongRunningOptions<S>,
): Promise<S> {
  const log = (line: string) => process.stderr.write(`${options.name}: ${line}\n`);
  const admin =
    options.admin === undefined
      ? undefined
      : await startAdminListener({
          host: options.admin.host,
          port: options.admin.port,
          routes: metricsAndHealthRoutes(
            statusRegistry(
              options.admin.metrics.worker,
              options.status,
              options.admin.metrics.counters,
            ),
          ),
        });
  if (admin !== undefined) log(`admin listener on ${admin.url} (/metrics, /healthz)`);
  if (options.started !== undefined) {
    process.stdout.write(
      options.jsonLines
        ? `${JSON.stringify({ ts: new Date().toISOString(), event: 'started', ...options.started.json })}\n`
        : `${options.started.human}\n`,
    );
  }
  const timer = setInterval(
    () => printStatus(options.jsonLines, 'status', options.status(), options.human),
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
        log(
          `${signal} again: exiting now${options.onExit === undefined ? '' : `; ${options.onExit}`}`,
        );
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      log(`${signal}: ${options.onStop ?? 'finishing the work in hand'}`);
      stopping ??= options.stop();
      void stopping.then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
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
  if (options.printFinal) printStatus(options.jsonLines, 'stopped', final, options.human);
  return final;
}
