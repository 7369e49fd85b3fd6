import { Command, Errors, Flags } from '@oclif/core';
import { durationFlag } from './duration-flag.js';
import { ConfigError, LOG_LEVELS, loadConfig, type Config } from '../config.js';
import { createLogger, type Logger } from './log.js';
import { ServiceUnavailableError, UsageError } from '../domain/errors.js';
import { DEFAULT_ADMIN_HOST } from '../server/admin.js';

/** Flags every command that talks to the services accepts; they override the environment. */
export const serviceFlags = {
  'redis-url': Flags.string({
    description: 'Redis URL [env: REDIS_URL, default: redis://127.0.0.1:6379]',
    helpGroup: 'SERVICES',
  }),
  'database-url': Flags.string({
    description:
      'PostgreSQL URL [env: DATABASE_URL, default: postgres://postgres@127.0.0.1:5432/fsale]',
    helpGroup: 'SERVICES',
  }),
  'key-prefix': Flags.string({
    description:
      'prefix of every Redis key, so several sales share one Redis [env: FSALE_KEY_PREFIX, default: fsale]',
    helpGroup: 'SERVICES',
  }),
};

/**
 * The admin listener of every long-running process (serve, the workers, reconcile): internals
 * (metrics, health, detailed readiness) on a port of their own, loopback by default.
 */
export const adminFlags = {
  'admin-port': Flags.integer({
    description:
      'serve GET /metrics and /healthz (serve: also a detailed /readyz) on this port, apart from any public one; 0 picks a free one [default: no admin listener]',
    min: 0,
    max: 65535,
    helpGroup: 'ADMIN',
  }),
  'admin-host': Flags.string({
    description: 'address the admin listener binds; keep it off the public network',
    default: DEFAULT_ADMIN_HOST,
    helpGroup: 'ADMIN',
  }),
};

/** Liveness of a worker loop on its admin listener (the workers and `reconcile --interval`). */
export const stuckAfterFlag = {
  'stuck-after': durationFlag({
    description:
      'GET /healthz on the admin port answers 503 "stuck" once the loop has made no progress for this long (waits it chose, such as pauses and Retry-After, not counted), so a liveness probe restarts a worker hung on a silent connection; keep it above the longest single request the worker makes',
    default: 300_000,
    min: 1_000,
    helpGroup: 'ADMIN',
  }),
};

/** `--log-level` of every long-running process (src/cli/log.ts). */
export const logLevelFlag = {
  'log-level': Flags.string({
    description: `least severe records logged: ${LOG_LEVELS.join(', ')} [env: LOG_LEVEL, default: info]`,
    helpGroup: 'LOGS',
  }),
};

/** `--status-interval` of every worker command. */
export const statusIntervalFlag = {
  'status-interval': durationFlag({
    description: 'how often a status line is printed',
    default: 1_000,
    min: 10,
  }),
};

export const jwtSecretFlag = {
  'jwt-secret': Flags.string({
    description: 'HS256 secret, at least 16 characters [env: FSALE_JWT_SECRET]',
    helpGroup: 'SERVICES',
  }),
};

/** The payment provider, for the commands that charge, reconcile or audit. */
export const gatewayUrlFlag = {
  'gateway-url': Flags.string({
    description: 'payment gateway [env: FSALE_GATEWAY_URL, default: http://127.0.0.1:3100]',
    helpGroup: 'SERVICES',
  }),
};

export interface ServiceFlagValues {
  'redis-url'?: string | undefined;
  'database-url'?: string | undefined;
  'key-prefix'?: string | undefined;
  'jwt-secret'?: string | undefined;
  'gateway-url'?: string | undefined;
  'log-level'?: string | undefined;
  port?: number | undefined;
}

/**
 * The base of every fsale command: turns configuration mistakes, bad input and unreachable
 * services into a one-line message with exit code 2 (no stack trace); anything else is a bug
 * and keeps oclif's default report.
 */
export abstract class FsaleCommand extends Command {
  /**
   * A flag's old name (its `aliases`) still works, with one `fsale: warning:` line naming the
   * new one (oclif's own deprecation notice is wrapped over several lines, in another format).
   */
  public override async init(): Promise<void> {
    await super.init();
    const end = this.argv.indexOf('--');
    const words = end === -1 ? this.argv : this.argv.slice(0, end);
    for (const [name, flag] of Object.entries(this.ctor.flags)) {
      for (const alias of flag.aliases ?? []) {
        if (words.some((word) => word === `--${alias}` || word.startsWith(`--${alias}=`)))
          process.stderr.write(
            `fsale: warning: --${alias} is an old name of --${name}; use --${name}\n`,
          );
      }
    }
  }

  protected settings(flags: ServiceFlagValues): Config {
    return loadConfig({
      redisUrl: flags['redis-url'],
      databaseUrl: flags['database-url'],
      keyPrefix: flags['key-prefix'],
      jwtSecret: flags['jwt-secret'],
      gatewayUrl: flags['gateway-url'],
      logLevel: flags['log-level'],
      port: flags.port,
    });
  }

  /** The process's logger: JSON lines off a terminal or with --json, readable lines on one. */
  protected logger(name: string, config: Config): Logger {
    return createLogger({
      name,
      level: config.logLevel,
      json: this.jsonEnabled() || !process.stdout.isTTY,
    });
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    if (
      error instanceof ConfigError ||
      error instanceof UsageError ||
      error instanceof ServiceUnavailableError ||
      // oclif's own flag and argument errors (this.exit's ExitError is not one of them).
      (error instanceof Errors.CLIError && !(error instanceof Errors.ExitError))
    ) {
      // Printed as one line a script can grep (oclif's this.error wraps long lines).
      const message = error.message
        .replace('The following error occurred:', '')
        // A flag's own parser names the flag already (src/cli/duration.ts).
        .replace(/^Parsing --[\w-]+\s*\n\t(?=--)/, '')
        .replace(/See more help with --help/, '(see --help)')
        .trim()
        .replace(/\s*\n\s*/g, ' ');
      process.stderr.write(`fsale: ${message}\n`);
      this.exit(2);
    }
    return super.catch(error);
  }
}

/**
 * The base of the long-running commands (the workers, reconcile): with --json their output is
 * a stream of JSON lines (log and status records, src/cli/log.ts). A run that ends with the
 * 'stopped' record has said its result already (`resultLogged`): oclif prints it no second
 * time. A one-shot run's value (`reconcile --once`, `--rebuild-redis`) is one compact line.
 */
export abstract class JsonLinesCommand extends FsaleCommand {
  protected resultLogged = false;

  protected override logJson(json: unknown): void {
    if (!this.resultLogged) process.stdout.write(`${JSON.stringify(json)}\n`);
  }
}
