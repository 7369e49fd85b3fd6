import type { FastifyReply, FastifyRequest } from 'fastify';
import { createTokenVerifier, InvalidTokenError } from '../auth/tokens.js';
import { USER_ID } from '../redis/keys.js';
import { ProblemError } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The JWT subject, set by the authenticate hook on routes that require a token. */
    userId: string;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_\-.=]{1,4096})$/;

/** An onRequest hook: runs before the body is read, so an unauthenticated flood costs little. */
export function createAuthenticate(secret: string) {
  const verify = createTokenVerifier(secret);
  return function authenticate(
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
  ): void {
    const match = BEARER.exec(request.headers.authorization ?? '');
    try {
      if (match?.[1] === undefined) throw new InvalidTokenError('missing bearer token');
      const { sub } = verify(match[1]);
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
