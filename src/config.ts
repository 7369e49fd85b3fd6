// The one place where flags and environment variables become typed configuration.
// Precedence: flags > environment > defaults. Everything is validated here, once, so a bad
// value is a one-line error at start naming the variable, never a crash later.
import { parseRedisTarget } from './redis/target.js';

export const DEFAULTS = {
  redisUrl: 'redis://127.0.0.1:6379',
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/fsale',
  gatewayUrl: 'http://127.0.0.1:3100',
  keyPrefix: 'fsale',
  port: 3000,
  logLevel: 'info',
} as const;

/** pino's levels, most severe first; `silent` logs nothing (src/cli/log.ts). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Names of the environment variables, keyed by the config field they feed. */
export const ENV_NAMES = {
  redisUrl: 'REDIS_URL',
  databaseUrl: 'DATABASE_URL',
  jwtSecret: 'FSALE_JWT_SECRET',
  gatewayUrl: 'FSALE_GATEWAY_URL',
  keyPrefix: 'FSALE_KEY_PREFIX',
  port: 'PORT',
  logLevel: 'LOG_LEVEL',
} as const;

export interface Config {
  redisUrl: string;
  databaseUrl: string;
  /** Present only when a secret was given; commands that sign or verify use `requireJwtSecret`. */
  jwtSecret: string | undefined;
  gatewayUrl: string;
  keyPrefix: string;
  port: number;
  /** The long-running processes' log level (`--log-level`, LOG_LEVEL). */
  logLevel: LogLevel;
}

export type ConfigInput = Partial<Record<keyof Config, string | number | undefined>>;

/** A configuration mistake: the message names the variable; commands exit 2 on it. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Secrets shorter than this are refused: HS256 with a short key is brute-forceable offline. */
export const MIN_JWT_SECRET_LENGTH = 16;
const KEY_PREFIX = /^[A-Za-z0-9_-]{1,64}$/;

function pick(
  field: keyof Config,
  flags: ConfigInput,
  env: NodeJS.ProcessEnv,
): { value: string | undefined; source: string } {
  const flag = flags[field];
  if (flag !== undefined && flag !== '') return { value: String(flag), source: flagName(field) };
  const fromEnv = env[ENV_NAMES[field]];
  if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: ENV_NAMES[field] };
  return { value: undefined, source: ENV_NAMES[field] };
}

function flagName(field: keyof Config): string {
  return '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function url(value: string, source: string, protocols: readonly string[]): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(source, `not a valid URL: ${JSON.stringify(value)}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      source,
      `expected a ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL, got ${JSON.stringify(value)}`,
    );
  }
  if (parsed.hostname === '')
    throw new ConfigError(source, `URL has no host: ${JSON.stringify(value)}`);
  return value;
}

/** One node (`redis://host:port/db`) or a Redis Cluster by its seed nodes (`redis://h1:p1,h2:p2`). */
function redisTarget(value: string, source: string): string {
  try {
    parseRedisTarget(value);
  } catch (error) {
    throw new ConfigError(source, (error as Error).message);
  }
  return value;
}

function logLevel(value: string, source: string): LogLevel {
  const found = LOG_LEVELS.find((level) => level === value);
  if (found === undefined)
    throw new ConfigError(
      source,
      `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`,
    );
  return found;
}

export function loadConfig(flags: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const redis = pick('redisUrl', flags, env);
  const database = pick('databaseUrl', flags, env);
  const gateway = pick('gatewayUrl', flags, env);
  const prefix = pick('keyPrefix', flags, env);
  const port = pick('port', flags, env);
  const secret = pick('jwtSecret', flags, env);
  const level = pick('logLevel', flags, env);

  const config: Config = {
    redisUrl: redisTarget(redis.value ?? DEFAULTS.redisUrl, redis.source),
    databaseUrl: url(database.value ?? DEFAULTS.databaseUrl, database.source, [
      'postgres:',
      'postgresql:',
    ]),
    gatewayUrl: url(gateway.value ?? DEFAULTS.gatewayUrl, gateway.source, ['http:', 'https:']),
    keyPrefix: prefix.value ?? DEFAULTS.keyPrefix,
    port: DEFAULTS.port,
    jwtSecret: secret.value,
    logLevel: logLevel(level.value ?? DEFAULTS.logLevel, level.source),
  };
  if (!KEY_PREFIX.test(config.keyPrefix)) {
    throw new ConfigError(
      prefix.source,
      `must be 1-64 characters of letters, digits, '_' or '-', got ${JSON.stringify(config.keyPrefix)}`,
    );
  }
  if (port.value !== undefined) {
    const n = Number(port.value);
    if (!/^\d+$/.test(port.value) || n > 65535) {
      throw new ConfigError(
        port.source,
        `must be a port number 0-65535, got ${JSON.stringify(port.value)}`,
      );
    }
    config.port = n;
  }
  if (config.jwtSecret !== undefined && config.jwtSecret.length < MIN_JWT_SECRET_LENGTH) {
    throw new ConfigError(
      secret.source,
      `must be at least ${MIN_JWT_SECRET_LENGTH} characters (HS256 with a short secret can be brute-forced)`,
    );
  }
  return config;
}

/** The JWT secret, for commands that sign or verify tokens; a missing one is a ConfigError. */
export function requireJwtSecret(config: Config): string {
  if (config.jwtSecret === undefined) {
    throw new ConfigError(
      ENV_NAMES.jwtSecret,
      `is required: set it (at least ${MIN_JWT_SECRET_LENGTH} characters) or pass --jwt-secret`,
    );
  }
  return config.jwtSecret;
}

/** The database name in a PostgreSQL URL, and the same URL pointing at the `postgres` maintenance db. */
export function databaseParts(databaseUrl: string): { name: string; maintenanceUrl: string } {
  const parsed = new URL(databaseUrl);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres';
  parsed.pathname = '/postgres';
  return { name, maintenanceUrl: parsed.toString() };
}
