import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceOutage } from '../../src/domain/errors.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer } from '../../src/infra/local-services.js';
import { luaScript, RedisReplyError } from '../../src/redis/resp.js';
import { mayHaveRun } from '../../src/domain/errors.js';
import { RespClient, STALL_TIMEOUT_MS } from '../../src/redis/resp-client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// The buy path's own Redis client (src/redis/resp-client.ts), against the real Redis: replies of
// every RESP2 type, scripts by SHA with the EVAL fallback, and the outage behaviour the API's
// 503 relies on (fail at once while down, fail what was in flight, reconnect by itself).

let services: TestServices;
const clients: RespClient[] = [];
const connect = async (url: string, batch = true) => {
  const client = await RespClient.connect(url, { name: 'fsale-test-resp', batch });
  clients.push(client);
  return client;
};
/** What a command fails with; undefined when it succeeds. */
const failureOf = (reply: Promise<unknown>): Promise<unknown> =>
  reply.then(
    () => undefined,
    (e: unknown) => e,
  );
/** Until the client's PING succeeds again: its reconnect loop found Redis. */
const answersAgain = (client: RespClient) =>
  until(
    'Redis to answer again',
    () =>
      client.call(['PING']).then(
        () => true,
        () => false,
      ),
    15_000,
    25,
  );
beforeAll(async () => {
  services = await useTestServices();
});
afterAll(() => {
  for (const client of clients) client.disconnect();
});

describe.each([true, false])('RespClient (batched writes: %s)', (batch) => {
  it('answers every RESP2 reply type, in order, for many commands in flight', async () => {
    const client = await connect(services.redisUrl, batch);
    const key = `${services.keyPrefix}:resp:${String(batch)}`;
    const [set, got, missing, incr, negative, list, nested] = await Promise.all([
      client.call(['SET', `${key}:s`, 'héllo|wörld']),
      client.call(['GET', `${key}:s`]),
      client.call(['GET', `${key}:missing`]),
      client.call(['INCRBY', `${key}:n`, 42]),
      client.call(['DECRBY', `${key}:m`, 7]),
      client.call(['MGET', `${key}:s`, `${key}:missing`]),
      client.call(['EVAL', "return {1, {'a', {}}, false}", 0]),
    ]);
    expect(set).toBe('OK');
    expect(got).toBe('héllo|wörld');
    expect(missing).toBeNull();
    expect(incr).toBe(42);
    expect(negative).toBe(-7);
    expect(list).toEqual(['héllo|wörld', null]);
    expect(nested).toEqual([1, ['a', []], null]);

    const many = await Promise.all(
      Array.from({ length: 2_000 }, (_, i) => client.call(['INCR', `${key}:order`]).then(() => i)),
    );
    expect(many).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
    expect(await client.call(['GET', `${key}:order`])).toBe('2000');
  });

  it('reassembles a reply split across many socket reads', async () => {
    const client = await connect(services.redisUrl, batch);
    const key = `${services.keyPrefix}:resp:big:${String(batch)}`;
    const value = randomBytes(3 * 1024 * 1024).toString('base64');
    await client.call(['SET', key, value]);
    const [first, second] = await Promise.all([
      client.call(['GET', key]),
      client.call(['STRLEN', key]),
    ]);
    expect(first).toBe(value);
    expect(second).toBe(value.length);
  });
});

describe('RespClient scripts and errors', () => {
  it('runs a script the server has never seen (NOSCRIPT, then EVAL) and by SHA afterwards', async () => {
    const client = await connect(services.redisUrl);
    // A fresh comment gives a SHA no Redis has cached, without flushing anyone's scripts.
    const script = luaScript(
      `-- ${randomBytes(8).toString('hex')}\nreturn {KEYS[1], ARGV[1] + 1}`,
      1,
    );
    expect(await services.redis.script('EXISTS', script.sha)).toEqual([0]);
    expect(await client.evalScript(script, ['k', 41])).toEqual(['k', 42]);
    expect(await services.redis.script('EXISTS', script.sha)).toEqual([1]);
    expect(await client.evalScript(script, ['k', 1])).toEqual(['k', 2]);
  });

  it('rejects an error reply with RedisReplyError and keeps the connection usable', async () => {
    const client = await connect(services.redisUrl);
    const key = `${services.keyPrefix}:resp:err`;
    await client.call(['SET', key, 'text']);
    const failed = client.call(['INCR', key]);
    const next = client.call(['GET', key]);
    await expect(failed).rejects.toBeInstanceOf(RedisReplyError);
    await expect(failed).rejects.toThrow(/not an integer/);
    expect(await next).toBe('text');
  });

  it('selects the database and authenticates as the URL says', async () => {
    const url = new URL(services.redisUrl);
    url.pathname = '/3';
    const client = await connect(url.toString());
    const key = `${services.keyPrefix}:resp:db3`;
    await client.call(['SET', key, 'in db 3']);
    expect(await services.redis.get(key)).toBeNull();
    expect(await client.call(['CLIENT', 'GETNAME'])).toBe('fsale-test-resp');
    await client.call(['DEL', key]);

    url.pathname = '/0';
    url.password = 'not-the-password';
    await expect(connect(url.toString())).rejects.toThrow(/cannot reach Redis/);
  });

  it('quit answers what was sent before it, then closes', async () => {
    const client = await RespClient.connect(services.redisUrl, { name: 'fsale-test-resp' });
    const pending = client.call(['PING']);
    await client.quit();
    expect(await pending).toBe('PONG');
    await expect(client.call(['PING'])).rejects.toThrow(/connection is closed/);
  });
});

describe('RespClient during a Redis outage', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    const target = new URL(services.redisUrl);
    proxy = await startFaultProxy(target.hostname, Number(target.port || 6379));
  });
  afterAll(async () => proxy.close());

  it('fails in-flight and new commands as outages while down, and reconnects by itself', async () => {
    const target = new URL(services.redisUrl);
    target.host = `127.0.0.1:${proxy.port}`;
    const client = await connect(target.toString());
    expect(await client.call(['PING'])).toBe('PONG');

    proxy.setMode({ kind: 'blackhole' });
    // setMode dropped the connection: the next command fails at once as an outage.
    await until(
      'the dropped connection to fail commands as outages',
      () => client.call(['PING']).then(() => false, isServiceOutage),
      15_000,
      25,
    );
    // A command sent into a connection that then breaks fails as an outage too.
    proxy.setMode({ kind: 'pass' });
    await answersAgain(client);
    const inFlight = client.call(['BLPOP', `${services.keyPrefix}:resp:never`, 5]);
    await proxy.cut();
    const error: unknown = await failureOf(inFlight);
    expect(isServiceOutage(error)).toBe(true);
    const whileDown: unknown = await failureOf(client.call(['PING']));
    expect(isServiceOutage(whileDown)).toBe(true);

    await proxy.restore();
    await answersAgain(client);
    expect(await client.call(['ECHO', 'back'])).toBe('back');
  });
});

describe('RespClient when Redis hangs', () => {
  it('drops a connection that stops answering, fails fast while Redis hangs, and comes back', async () => {
    // A private redis-server (never the shared one) is SIGSTOPped: the kernel still accepts
    // bytes and connections, nothing answers, nothing resets.
    const dataDir = await mkdtemp(join(tmpdir(), 'fsale-resp-'));
    const server = await startRedisServer({ dataDir });
    try {
      const client = await connect(server.url);
      const closing = await connect(server.url);
      expect(await client.call(['PING'])).toBe('PONG');
      expect(await closing.call(['PING'])).toBe('PONG');
      process.kill(server.pid, 'SIGSTOP');
      // A shutdown (quit waits for the replies in flight) is not held hostage by a hung Redis.
      const unanswered = failureOf(closing.call(['PING']));
      const quitting = closing.quit();
      const startedAt = Date.now();
      const hung: unknown = await failureOf(client.call(['GET', 'k']));
      const waitedMs = Date.now() - startedAt;
      expect(isServiceOutage(hung)).toBe(true);
      expect(String(hung)).toMatch(/no reply from Redis/);
      // It was written: Redis may run it once it wakes up. The caller must say so.
      expect(mayHaveRun(hung)).toBe(true);
      // Not before: a slow moment of Redis is not an outage.
      expect(waitedMs).toBeGreaterThanOrEqual(STALL_TIMEOUT_MS - 5);
      // While it hangs, a buy's command fails at once instead of queueing behind the others.
      const meanwhile: unknown = await failureOf(client.call(['PING']));
      expect(isServiceOutage(meanwhile)).toBe(true);
      expect(mayHaveRun(meanwhile)).toBe(false);
      await quitting;
      expect(isServiceOutage(await unanswered)).toBe(true);

      process.kill(server.pid, 'SIGCONT');
      await answersAgain(client);
      expect(await client.call(['ECHO', 'back'])).toBe('back');
    } finally {
      process.kill(server.pid, 'SIGCONT');
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
