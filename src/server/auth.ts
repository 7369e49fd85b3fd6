import type { FastifyReply, FastifyRequest } from 'fastify';
import { createTokenVerifier, InvalidTokenError, type TokenPolicy } from '../auth/tokens.js';
import { USER_ID } from '../domain/ids.js';
import { ProblemError } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The JWT subject, set by the authenticate hook on routes that require a token. */
    userId: string;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_\-.=]{1,4096})$/;
const TOKEN = /^[A-Za-z0-9_\-.=]{1,4096}$/;

/** The token from `?access_token=` (EventSource cannot send headers), if well-formed. */
function queryToken(url: string): string | undefined {
  const query = url.indexOf('?');
  if (query === -1) return undefined;
  const token = new URLSearchParams(url.slice(query + 1)).get('access_token');
  return token !== null && TOKEN.test(token) ? token : undefined;
}

/**
 * An onRequest hook: runs before the body is read, so an unauthenticated flood costs little.
 * With `allowQueryToken` (SSE routes only) the token may come as `?access_token=`.
 */
export function createAuthenticate(
  secret: string,
  options: { allowQueryToken?: boolean; policy?: TokenPolicy | undefined } = {},
) {
  const verify = createTokenVerifier(secret, options.policy);
  return function authenticate(
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
  ): void {
    const token =
      BEARER.exec(request.headers.authorization ?? '')?.[1] ??
      (options.allowQueryToken === true ? queryToken(request.url) : undefined);
    try {
      if (token === undefined) throw new InvalidTokenError('missing bearer token');
      const { sub } = verify(token);
      // The subject names Redis keys: refuse anything outside the user id alphabet.
      if (!USER_ID.test(sub)) throw new InvalidTokenError('unusable subject');
      request.userId = sub;
      done();
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) {
        done(error as Error);
        return;
      }
      reply.header('www-authenticate', 'Bearer');
      done(new ProblemError('unauthorized'));
    }
  };
}
