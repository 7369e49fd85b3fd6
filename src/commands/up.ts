import { Flags } from '@oclif/core';
import { FsaleCommand, jwtSecretFlag, serviceFlags } from '../cli/base.js';
import { linePrefixer, outputStyle } from '../cli/colors.js';
import { readableLine } from '../cli/log.js';
import { stackFlags, stackSettings } from '../cli/stack-flags.js';
import { startStack, stopOnSignal } from '../stack/stack.js';

export default class Up extends FsaleCommand {
  static override summary = 'Run the whole sale on this machine: API, workers, gateway, reconcile.';
  static override description = `Migrates the database, then starts the mock gateway, the API (--api-workers processes), order and payment workers and a reconcile loop as child processes, with prefixed, coloured log lines. Uses REDIS_URL / DATABASE_URL when they answer; otherwise starts a private redis-server (AOF on, noeviction) and postgres (initdb on first run) with data under --data-dir, and says so. No JWT secret set: one is generated and kept in --data-dir.

A component that dies stops everything (nothing is restarted silently). Ctrl-C or SIGTERM stops the API first, then the workers, the gateway and any private server, and exits 0.`;
  static override examples = [
    '<%= config.bin %> up',
    '<%= config.bin %> up --api-workers 2 --payment-workers 2 --gateway-speed 10 --port 8080',
    'REDIS_URL=redis://10.0.0.5:6379 <%= config.bin %> up --demo-auth',
    '<%= config.bin %> up --redis-cluster --demo-auth   # the whole sale on a private local Redis Cluster',
  ];
  static override flags = {
    ...serviceFlags,
    ...jwtSecretFlag,
    ...stackFlags,
    port: Flags.integer({
      description: 'API port (0 picks a free one) [env: PORT, default: 3000]',
      min: 0,
      max: 65535,
    }),
    'demo-auth': Flags.boolean({
      description: 'mount the storefront demo login (GET /demo/token?user=)',
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Up);
    const config = this.settings(flags);
    const style = outputStyle();
    const prefix = linePrefixer(style);
    const say = (message: string) => process.stdout.write(prefix('up', message) + '\n');
    const stopped = stopOnSignal();
    const stack = await startStack({
      ...stackSettings(config, flags),
      port: config.port,
      demoAuth: flags['demo-auth'],
      signal: stopped,
      // The children's log records are JSON lines (their stdout is a pipe): shown readably.
      onLine: (name, line) => process.stdout.write(prefix(name, readableLine(line, style)) + '\n'),
      onNotice: say,
    });
    say(
      `ready: API ${stack.apiUrl}, gateway ${stack.gatewayUrl}, ${stack.processes.length} processes (Ctrl-C to stop)`,
    );
    const outcome = await new Promise<{ by: 'signal' } | { by: 'failure'; name: string }>(
      (resolve) => {
        if (stopped.aborted) resolve({ by: 'signal' });
        stopped.addEventListener('abort', () => resolve({ by: 'signal' }), { once: true });
        void stack.failed.then((name) => resolve({ by: 'failure', name }));
      },
    );
    if (outcome.by === 'signal') say('stopping: API first, then workers, gateway, services');
    await stack.stop();
    say('stopped');
    if (outcome.by === 'failure') this.exit(1);
  }
}
