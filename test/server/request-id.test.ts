import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/server/app.js';
import { memoryLogger, type MemoryLog } from '../helpers/log.js';
import { TEST_JWT_SECRET, useTestServices } from '../helpers/services.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('request ids', () => {
  let app: App;
  let memory: MemoryLog;
  beforeAll(async () => {
    const s = await useTestServices();
    memory = memoryLogger('info');
    app = await buildApp({
      redisUrl: s.redisUrl,
      databaseUrl: s.databaseUrl,
      keyPrefix: s.keyPrefix,
      jwtSecret: TEST_JWT_SECRET,
      logger: memory.logger,
    });
    // A bug in a handler: the one kind of error the API logs (with its cause), as a bare 500.
    app.get('/boom', () => {
      throw new Error('handler failed', { cause: new RangeError('the real reason') });
    });
    await app.ready();
  });
  afterAll(() => app.close());

  it("a 500's log record carries the request's id and the cause; the response carries the id, not the details", async () => {
    const response = await app.inject({ method: 'GET', url: '/boom' });
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('the real reason');
    const id = response.headers['x-request-id'];
    expect(id).toMatch(UUID);
    const logged = memory.records.filter((r) => r.reqId === id);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'error',
      msg: 'unhandled error',
      err: {
        type: 'Error',
        message: 'handler failed',
        cause: { type: 'RangeError', message: 'the real reason' },
      },
    });
  });

  it("keeps a caller's short printable X-Request-Id, and replaces one that is long or has spaces or control bytes", async () => {
    const kept = await app.inject({
      method: 'GET',
      url: '/boom',
      headers: { 'x-request-id': 'edge-7f3a:42' },
    });
    expect(kept.headers['x-request-id']).toBe('edge-7f3a:42');
    expect(memory.records.some((r) => r.reqId === 'edge-7f3a:42')).toBe(true);

    for (const bad of ['x'.repeat(129), 'two words', 'tab\there']) {
      const replaced = await app.inject({
        method: 'GET',
        url: '/healthz',
        headers: { 'x-request-id': bad },
      });
      expect(replaced.headers['x-request-id'], bad).toMatch(UUID);
    }
  });

  it('logs nothing for a request that goes well, at the default level', async () => {
    const before = memory.records.length;
    const ok = await app.inject({ method: 'GET', url: '/healthz' });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['x-request-id']).toMatch(UUID);
    expect(memory.records.slice(before)).toEqual([]);
  });
});
