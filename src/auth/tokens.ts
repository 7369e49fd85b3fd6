import { createSigner, createVerifier, TokenError } from 'fast-jwt';

// HS256 only, pinned on both sides: a token signed with `none` or any other algorithm, with
// another secret, without `sub` or without `exp` is rejected.
const ALGORITHM = 'HS256';

export interface TokenClaims {
  sub: string;
  exp: number;
  iat?: number;
}

/** Returns a function that signs a token for a user, valid `ttlSeconds` from now. */
export function createTokenMinter(secret: string, ttlSeconds: number): (userId: string) => string {
  const sign = createSigner({ key: secret, algorithm: ALGORITHM, expiresIn: ttlSeconds * 1000 });
  return (userId) => sign({ sub: userId });
}

/** Signs one token per user id (a signer costs a few microseconds; 100,000 take well under 1 s). */
export function mintTokens(
  secret: string,
  userIds: readonly string[],
  ttlSeconds: number,
): string[] {
  const mint = createTokenMinter(secret, ttlSeconds);
  return userIds.map(mint);
}

export class InvalidTokenError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

/** Returns a verifier that yields the claims of a valid token or throws InvalidTokenError. */
export function createTokenVerifier(secret: string): (token: string) => TokenClaims {
  const verify = createVerifier({
    key: secret,
    algorithms: [ALGORITHM],
    requiredClaims: ['sub', 'exp'],
    // Verified tokens are cached by their signature: a buyer retrying reuses the work.
    cache: 10_000,
  });
  return (token) => {
    let claims: unknown;
    try {
      claims = verify(token);
    } catch (error) {
      throw new InvalidTokenError(error instanceof TokenError ? error.message : 'invalid token');
    }
    const { sub, exp } = claims as Partial<TokenClaims>;
    if (typeof sub !== 'string' || sub === '' || typeof exp !== 'number') {
      throw new InvalidTokenError('token must carry a string sub and a numeric exp');
    }
    return claims as TokenClaims;
  };
}
