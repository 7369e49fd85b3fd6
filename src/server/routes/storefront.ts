import { readFileSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { createTokenMinter } from '../../auth/tokens.js';
import { USER_ID } from '../../domain/ids.js';
import { mediaResponse, problemResponses } from '../openapi.js';

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
  const pageSchema = (summary: string, mediaType: string) => ({
    summary,
    response: { 200: mediaResponse(mediaType, summary) },
  });
  app.get(
    '/',
    { schema: pageSchema('The storefront page', 'text/html') },
    async (_request, reply) =>
      reply.headers(SECURITY_HEADERS).type('text/html; charset=utf-8').send(html),
  );
  const scriptSchema = pageSchema("The storefront's script", 'text/javascript');
  app.get('/app.js', { schema: scriptSchema }, async (_request, reply) =>
    reply.headers(SECURITY_HEADERS).type('text/javascript; charset=utf-8').send(script),
  );

  if (!options.demoAuth) return;
  const mint = createTokenMinter(options.jwtSecret, 3600);
  app.get(
    '/demo/token',
    {
      schema: {
        summary: 'A token for any user (only with serve --demo-auth: demos only)',
        querystring: Type.Object(
          { user: Type.String({ pattern: USER_ID.source }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ user: Type.String(), token: Type.String() }),
          ...problemResponses('bad_request'),
        },
      },
    },
    async (request) => ({ user: request.query.user, token: mint(request.query.user) }),
  );
};
