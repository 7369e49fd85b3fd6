// Tokens a library would refuse to sign, for the tests that prove the API refuses them.
import { createHmac } from 'node:crypto';

const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

/**
 * A JWT built by hand, so a test can forge what a library would refuse to sign: `alg: none`,
 * other algorithms, missing claims. `secret` undefined leaves the signature empty.
 */
export function craftJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: string | undefined,
  hmac: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  return craftJwtFromText(header, JSON.stringify(payload), secret, hmac);
}

/** craftJwt with the payload as raw JSON text: `"exp":1e999`, which no object serialises to. */
export function craftJwtFromText(
  header: Record<string, unknown>,
  payloadJson: string,
  secret: string | undefined,
  hmac: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(payloadJson)}`;
  const signature =
    secret === undefined ? '' : createHmac(hmac, secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}
