import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { pingPostgres } from '../../db/pool.js';
import { describe } from '../../domain/errors.js';
import { jsonAnswer, metricsAnswer, type AdminRoutes } from '../admin.js';
import type { ApiContext } from '../app.js';
import { SharedReads } from '../shared-reads.js';

/** Redis and PostgreSQL as this process sees them: 'ok' or the error, for the operator only. */
export interface Readiness {
  ready: boolean;
  checks: { redis: string; postgres: string };
}

export async function checkReadiness(api: Pick<ApiContext, 'redis' | 'pool'>): Promise<Readiness> {
  const [redisCheck, pgCheck] = await Promise.allSettled([
    api.redis.ping(),
    pingPostgres(api.pool),
  ]);
  const checks = {
    redis: redisCheck.status === 'fulfilled' ? 'ok' : describe(redisCheck.reason),
    postgres: pgCheck.status === 'fulfilled' ? 'ok' : describe(pgCheck.reason),
  };
  return { ready: checks.redis === 'ok' && checks.postgres === 'ok', checks };
}

/**
 * The public GET /readyz's check: at most one a second per process, one at a time, however many
 * ask (shared-reads.ts), so a crowd on the public route costs PostgreSQL one `SELECT 1` a second
 * on the API's small pool. The admin listener's /readyz checks live, for the operator.
 */
export function sharedReadiness(api: Pick<ApiContext, 'redis' | 'pool'>): () => Promise<Readiness> {
  const reads = new SharedReads<'process', Readiness>(() => checkReadiness(api), {
    maxAgeMs: 1_000,
    maxEntries: 1,
    now: () => performance.now(),
  });
  return () => reads.get('process');
}

export function readinessBody(readiness: Readiness) {
  return { status: readiness.ready ? 'ready' : 'not_ready', checks: readiness.checks };
}

/** The admin listener's routes for one API process (see src/server/admin.ts). */
export function apiAdminRoutes(api: ApiContext): AdminRoutes {
  return {
    '/healthz': async () => jsonAnswer(200, { status: 'ok' }),
    '/readyz': async () => {
      const readiness = await checkReadiness(api);
      return jsonAnswer(readiness.ready ? 200 : 503, readinessBody(readiness));
    },
    '/metrics': () => metricsAnswer(api.metrics.registry),
  };
}

/**
 * The public probes. Readiness says only ready or not: the checks carry connection errors
 * (hosts, ports, PostgreSQL messages) that are for the operator, on the admin listener.
 */
const Ready = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
});

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** Liveness: the process answers. */
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness: the process answers',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  /**
   * Readiness: Redis and PostgreSQL both answered the last check (at most a second old); a load
   * balancer should skip us otherwise.
   */
  const readySchema = {
    summary: 'Readiness: Redis and PostgreSQL both answer',
    response: {
      200: { ...Ready, description: 'Ready' },
      503: { ...Ready, description: 'Not ready (the admin port says why)' },
    },
  };
  app.get('/readyz', { schema: readySchema }, async (_request, reply) => {
    const { ready } = await app.api.readiness();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready' });
  });
};
