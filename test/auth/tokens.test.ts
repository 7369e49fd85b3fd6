import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createTokenMinter,
  createTokenVerifier,
  InvalidTokenError,
  mintTokens,
} from '../../src/auth/tokens.js';
import { runCli } from '../helpers/cli.js';
import { TEST_JWT_SECRET } from '../helpers/services.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
function handMade(header: object, payload: object | string, secret = TEST_JWT_SECRET): string {
  const text =
    typeof payload === 'string' ? Buffer.from(payload).toString('base64url') : b64(payload);
  const body = `${b64(header)}.${text}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;

describe('tokens', () => {
  const verify = createTokenVerifier(TEST_JWT_SECRET);

  it('`fsale token` prints a token the verifier accepts, for that user', async () => {
    const result = await runCli(['token', '--user', 'alice', '--ttl', '2m', '--json'], {
      FSALE_JWT_SECRET: TEST_JWT_SECRET,
    });
    expect(result.code).toBe(0);
    const { token, user } = JSON.parse(result.stdout) as { token: string; user: string };
    expect(user).toBe('alice');
    const claims = verify(token);
    expect(claims.sub).toBe('alice');
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(100);
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(120);
  });

  it('mints many distinct tokens, each verifying to its own user', () => {
    const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
    const tokens = mintTokens(TEST_JWT_SECRET, users, 60);
    expect(new Set(tokens).size).toBe(1000);
    tokens.forEach((token, i) => expect(verify(token).sub).toBe(users[i]));
  });

  it.each([
    [
      'signed with another secret',
      () => createTokenMinter('another-secret-0123456789', 60)('alice'),
    ],
    [
      'alg none',
      () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: inOneHour() })}.`,
    ],
    ['alg HS512', () => handMade({ alg: 'HS512', typ: 'JWT' }, { sub: 'alice', exp: inOneHour() })],
    ['expired', () => handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice', exp: 1_000_000 })],
    ['without sub', () => handMade({ alg: 'HS256', typ: 'JWT' }, { exp: inOneHour() })],
    ['without exp', () => handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice' })],
    [
      'with a numeric sub',
      () => handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 42, exp: inOneHour() }),
    ],
    ['garbage', () => 'not.a.jwt'],
    [
      'alg hs256 in lower case',
      () => handMade({ alg: 'hs256', typ: 'JWT' }, { sub: 'alice', exp: inOneHour() }),
    ],
    [
      'a crit header',
      () =>
        handMade({ alg: 'HS256', crit: ['b64'], b64: false }, { sub: 'alice', exp: inOneHour() }),
    ],
    [
      'not valid yet (nbf)',
      () => handMade({ alg: 'HS256' }, { sub: 'alice', exp: inOneHour(), nbf: inOneHour() - 60 }),
    ],
    [
      'a fourth segment',
      () => `${handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice', exp: inOneHour() })}.x`,
    ],
    [
      'a padded signature',
      () => `${handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice', exp: inOneHour() })}=`,
    ],
    [
      'an empty signature',
      () =>
        handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice', exp: inOneHour() }).replace(
          /\.[^.]+$/,
          '.',
        ),
    ],
    ['a JSON array payload', () => handMade({ alg: 'HS256', typ: 'JWT' }, ['alice'])],
    // JSON.parse('1e999') is Infinity: a number, later than any now.
    ['with exp = 1e999', () => handMade({ alg: 'HS256' }, '{"sub":"alice","exp":1e999}')],
    [
      'with nbf = -1e999',
      () => handMade({ alg: 'HS256' }, `{"sub":"alice","exp":${inOneHour()},"nbf":-1e999}`),
    ],
    [
      'with iat = 1e999',
      () => handMade({ alg: 'HS256' }, `{"sub":"alice","exp":${inOneHour()},"iat":1e999}`),
    ],
    [
      'valid for ten years (beyond the 24 h default maximum)',
      () => createTokenMinter(TEST_JWT_SECRET, 10 * 365 * 24 * 3600)('alice'),
    ],
  ])('rejects a token %s', (_name, make) => {
    expect(() => verify(make())).toThrow(InvalidTokenError);
  });

  it('checks the lifetime, issuer and audience its policy names', () => {
    const strict = createTokenVerifier(TEST_JWT_SECRET, {
      maxTtlSeconds: 600,
      issuer: 'shop',
      audience: 'fsale',
    });
    const good = createTokenMinter(TEST_JWT_SECRET, 300, { issuer: 'shop', audience: 'fsale' });
    expect(strict(good('alice')).sub).toBe('alice');
    const inTenMinutesOrLess = Math.floor(Date.now() / 1000) + 300;
    expect(
      strict(
        handMade(
          { alg: 'HS256' },
          { sub: 'bob', exp: inTenMinutesOrLess, iss: 'shop', aud: ['other', 'fsale'] },
        ),
      ).sub,
    ).toBe('bob');
    for (const bad of [
      createTokenMinter(TEST_JWT_SECRET, 3600, { issuer: 'shop', audience: 'fsale' })('alice'),
      createTokenMinter(TEST_JWT_SECRET, 300, { issuer: 'evil', audience: 'fsale' })('alice'),
      createTokenMinter(TEST_JWT_SECRET, 300, { issuer: 'shop', audience: 'other' })('alice'),
      createTokenMinter(TEST_JWT_SECRET, 300)('alice'),
      // Issued ten years ago for ten years and a minute: in its last minute, still refused.
      handMade(
        { alg: 'HS256' },
        {
          sub: 'eve',
          iat: inTenMinutesOrLess - 300 - 10 * 365 * 86_400,
          exp: inTenMinutesOrLess - 240,
          iss: 'shop',
          aud: 'fsale',
        },
      ),
    ]) {
      expect(() => strict(bad)).toThrow(InvalidTokenError);
    }
  });

  it('`fsale token --jwt-issuer --jwt-audience` mints what a serve with --jwt-issuer/--jwt-audience accepts', async () => {
    const result = await runCli(
      ['token', '--user', 'carol', '--jwt-issuer', 'shop', '--jwt-audience', 'fsale', '--json'],
      { FSALE_JWT_SECRET: TEST_JWT_SECRET },
    );
    expect(result.code, result.stderr).toBe(0);
    const { token } = JSON.parse(result.stdout) as { token: string };
    const strict = createTokenVerifier(TEST_JWT_SECRET, {
      maxTtlSeconds: 3600,
      issuer: 'shop',
      audience: 'fsale',
    });
    expect(strict(token).sub).toBe('carol');
  });

  it('accepts a hand-made HS256 token with sub and exp (the format is plain JWT)', () => {
    expect(
      verify(handMade({ alg: 'HS256', typ: 'JWT' }, { sub: 'bob', exp: inOneHour() })).sub,
    ).toBe('bob');
  });
});
