// Tokens a library would refuse to sign, for the tests that prove the API refuses them.
import { createHmac } from 'node:crypto';

const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

/**
 * A JWT built by hand, so a test can forge what a library would refuse to sign: `alg: none`,
 * other algorithms, missing claims, or a payload given as raw JSON text (`"exp":1e999`, which
 * no object serialises to). `secret` undefined leaves the signature empty.
 */
export function craftJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
  secret: string | undefined,
  hmac: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  const json = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(json)}`;
  const signature =
    secret === undefined ? '' : createHmac(hmac, secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}
