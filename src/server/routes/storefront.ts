import { readFileSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { createTokenMinter } from '../../auth/tokens.js';
import { USER_ID } from '../../redis/keys.js';

const page = (file: string) => readFileSync(new URL(`../public/${file}`, import.meta.url), 'utf8');

// Static, no build step: the page and its script are read once at start.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

export interface StorefrontOptions {
  /** Mount GET /demo/token?user=<id>, which signs a token for anyone who asks. Demos only. */
  demoAuth: boolean;
  jwtSecret: string;
}

export const storefrontRoutes: FastifyPluginAsyncTypebox<StorefrontOptions> = async (
  app,
  options,
) => {
  const html = page('index.html');
  const script = page('app.js');
  app.get('/', async (_request, reply) =>
    reply.headers(SECURITY_HEADERS).type('text/html; charset=utf-8').send(html),
  );
  app.get('/app.js', async (_request, reply) =>
    reply.headers(SECURITY_HEADERS).type('text/javascript; charset=utf-8').send(script),
  );

  if (!options.demoAuth) return;
  const mint = createTokenMinter(options.jwtSecret, 3600);
  app.get(
    '/demo/token',
    {
      schema: {
        querystring: Type.Object(
          { user: Type.String({ pattern: USER_ID.source }) },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => ({ user: request.query.user, token: mint(request.query.user) }),
  );
};
