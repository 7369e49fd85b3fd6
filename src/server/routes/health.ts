import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { describe } from '../../domain/errors.js';

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { redis, pool, metrics } = app.sale;

  /** Liveness: the process answers. */
  app.get('/healthz', async () => ({ status: 'ok' }));

  /** Readiness: Redis and PostgreSQL both answer; a load balancer should skip us otherwise. */
  app.get('/readyz', async (_request, reply) => {
    const [redisCheck, pgCheck] = await Promise.allSettled([redis.ping(), pool.query('SELECT 1')]);
    const checks = {
      redis: redisCheck.status === 'fulfilled' ? 'ok' : describe(redisCheck.reason),
      postgres: pgCheck.status === 'fulfilled' ? 'ok' : describe(pgCheck.reason),
    };
    const ready = checks.redis === 'ok' && checks.postgres === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });

  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
};
