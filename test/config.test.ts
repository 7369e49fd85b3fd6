import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, loadConfig, requireJwtSecret } from '../src/config.js';
import { runCli } from './helpers/cli.js';

describe('config', () => {
  it('uses the defaults when nothing is set', () => {
    const config = loadConfig({}, {});
    expect(config).toMatchObject({
      redisUrl: DEFAULTS.redisUrl,
      databaseUrl: DEFAULTS.databaseUrl,
      keyPrefix: 'fsale',
      port: 3000,
      jwtSecret: undefined,
    });
  });

  it('prefers flags over the environment', () => {
    const env = { REDIS_URL: 'redis://env:6379', PORT: '4000', FSALE_KEY_PREFIX: 'envp' };
    expect(loadConfig({}, env)).toMatchObject({
      redisUrl: 'redis://env:6379',
      port: 4000,
      keyPrefix: 'envp',
    });
    expect(loadConfig({ redisUrl: 'redis://flag:1', port: 5, keyPrefix: 'fp' }, env)).toMatchObject(
      {
        redisUrl: 'redis://flag:1',
        port: 5,
        keyPrefix: 'fp',
      },
    );
  });

  it.each([
    ['REDIS_URL', 'not a url', /REDIS_URL: not a valid URL/],
    ['REDIS_URL', 'http://127.0.0.1:6379', /REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/],
    ['REDIS_URL', 'redis://a:7000,b', /REDIS_URL: a cluster seed node needs host:port/],
    ['REDIS_URL', 'redis://a:7000,b:7001/2', /REDIS_URL: a Redis Cluster has only database 0/],
    ['DATABASE_URL', 'mysql://x/y', /DATABASE_URL: expected a postgres/],
    ['FSALE_GATEWAY_URL', 'ftp://x', /FSALE_GATEWAY_URL: expected a http/],
    ['FSALE_KEY_PREFIX', 'has space', /FSALE_KEY_PREFIX: must be 1-64/],
    ['FSALE_KEY_PREFIX', 'a*b', /FSALE_KEY_PREFIX: must be 1-64/],
    ['PORT', '70000', /PORT: must be a port number/],
    ['PORT', '3e3', /PORT: must be a port number/],
    ['FSALE_JWT_SECRET', 'short', /FSALE_JWT_SECRET: must be at least 16/],
  ])('rejects %s=%j with an error naming the variable', (name, value, message) => {
    expect(() => loadConfig({}, { [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({}, { [name]: value })).toThrow(message);
  });

  it('takes a Redis Cluster as its seed nodes in REDIS_URL', () => {
    const url = 'redis://10.0.0.1:7000,10.0.0.2:7001';
    expect(loadConfig({}, { REDIS_URL: url }).redisUrl).toBe(url);
  });

  it('names the flag when the bad value came from a flag', () => {
    expect(() => loadConfig({ redisUrl: 'nope' }, {})).toThrow(/^--redis-url: /);
  });

  it('requires a JWT secret only where one is needed', () => {
    const config = loadConfig({}, {});
    expect(() => requireJwtSecret(config)).toThrow(/FSALE_JWT_SECRET: is required/);
    expect(requireJwtSecret(loadConfig({}, { FSALE_JWT_SECRET: 'x'.repeat(16) }))).toBe(
      'x'.repeat(16),
    );
  });
});

describe('config errors from the CLI', () => {
  it('a malformed REDIS_URL is a one-line error naming it, exit 2, no stack trace', async () => {
    const result = await runCli(['seed', '--product', 'p1', '--stock', '1'], {
      REDIS_URL: 'redis//oops',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/REDIS_URL: not a valid URL/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a missing secret for `token` names FSALE_JWT_SECRET, exit 2', async () => {
    const result = await runCli(['token', '--user', 'alice']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/FSALE_JWT_SECRET: is required/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unreachable PostgreSQL is reported in one line with exit 2', async () => {
    const result = await runCli(['migrate'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/postgres/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
