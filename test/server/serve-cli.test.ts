import { beforeAll, describe, expect, it } from 'vitest';
import { createTokenMinter } from '../../src/auth/tokens.js';
import { send } from '../helpers/http.js';
import { childPids, isAlive, startCli } from '../helpers/process.js';
import { seed, tokenFor } from '../helpers/sale.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';
import { NO_LOAD_SHEDDING } from '../helpers/stack.js';
import { craftJwtFromText } from '../helpers/tokens.js';

const problemType = (body: string) => (JSON.parse(body) as { type: string }).type;
const buyWith = (url: string, token: string, key: string) =>
  send(url, {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${token}`, 'idempotency-key': key },
    body: { productId: 'cl', qty: 1 },
  });

describe('fsale serve', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'cl', stock: 100 });
  });

  it('--api-workers 2 forks two API processes on one port and shuts all down cleanly on SIGTERM', async () => {
    const server = startCli(
      ['serve', '--port', '0', '--api-workers', '2', ...NO_LOAD_SHEDDING],
      s.env,
    );
    const url = await server.waitFor(/listening on (http:\/\/\S+) \(2 processes/);
    const workers = childPids(server.pid);
    expect(workers).toHaveLength(2);

    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) => buyWith(url, tokenFor(`w${i}`), `k${i}`)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(202));

    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(isAlive(pid)).toBe(false);
  });

  it('--max-token-ttl 10m --jwt-issuer shop --jwt-audience fsale: a token valid longer, from another issuer, for another audience or with exp 1e999 gets 401; one from `fsale token` with those claims buys', async () => {
    const server = startCli(
      [
        'serve',
        '--port',
        '0',
        '--max-token-ttl',
        '10m',
        '--jwt-issuer',
        'shop',
        '--jwt-audience',
        'fsale',
        ...NO_LOAD_SHEDDING,
      ],
      s.env,
    );
    const url = await server.waitFor(/listening on (http:\/\/\S+)/);
    const claims = { issuer: 'shop', audience: 'fsale' };
    const inFiveMinutes = Math.floor(Date.now() / 1000) + 300;
    const tokens = {
      'valid for an hour': createTokenMinter(TEST_JWT_SECRET, 3600, claims)('t1'),
      'another issuer': createTokenMinter(TEST_JWT_SECRET, 300, { ...claims, issuer: 'evil' })(
        't2',
      ),
      'another audience': createTokenMinter(TEST_JWT_SECRET, 300, {
        ...claims,
        audience: 'other',
      })('t3'),
      'no issuer or audience': createTokenMinter(TEST_JWT_SECRET, 300)('t4'),
      'exp 1e999': craftJwtFromText(
        { alg: 'HS256', typ: 'JWT' },
        '{"sub":"t5","exp":1e999,"iss":"shop","aud":"fsale"}',
        TEST_JWT_SECRET,
      ),
      'a finite exp (the same token otherwise)': craftJwtFromText(
        { alg: 'HS256', typ: 'JWT' },
        `{"sub":"t6","exp":${inFiveMinutes},"iss":"shop","aud":"fsale"}`,
        TEST_JWT_SECRET,
      ),
    };
    const answers: Record<string, string> = {};
    for (const [name, token] of Object.entries(tokens)) {
      const r = await buyWith(url, token, `k-${name}`);
      answers[name] = r.status === 401 ? `401 ${problemType(r.body)}` : String(r.status);
    }
    const unauthorized = '401 urn:fsale:problem:unauthorized';
    expect(answers).toEqual({
      'valid for an hour': unauthorized,
      'another issuer': unauthorized,
      'another audience': unauthorized,
      'no issuer or audience': unauthorized,
      'exp 1e999': unauthorized,
      // The control: the forged token was refused for its exp, not for how it was built.
      'a finite exp (the same token otherwise)': '202',
    });

    const minted = await runCli(
      [
        'token',
        '--user',
        'tk-good',
        '--ttl',
        '5m',
        '--jwt-issuer',
        'shop',
        '--jwt-audience',
        'fsale',
      ],
      s.env,
    );
    expect(minted.code, minted.stderr).toBe(0);
    const good = await buyWith(url, minted.stdout.trim(), 'k-good');
    expect(good.status, good.body).toBe(202);
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses to start without a JWT secret (exit 2, names the variable)', async () => {
    const { FSALE_JWT_SECRET: _unused, ...env } = s.env;
    const result = await runCli(['serve', '--port', '0'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/FSALE_JWT_SECRET: is required/);
  });
});
