import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary, freePort, isListening } from '../../src/infra/local-services.js';
import { RespClient } from '../../src/redis/resp-client.js';
import { runCli } from '../helpers/cli.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { buy, freshKey, tokenFor } from '../helpers/sale.js';
import { send } from '../helpers/http.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// `rediss://` URLs: a private redis-server speaking TLS only, with a self-signed certificate
// that the fsale processes trust through NODE_EXTRA_CA_CERTS. The API's two Redis clients
// (ioredis, and the buy path's own RESP client) and `fsale seed` all go over TLS; without the
// certificate trusted, `fsale serve` refuses to start rather than skip verification.

let services: TestServices;
let dir: string;
let redis: ChildProcess | undefined;
let redisUrl: string;
let api: CliProcess | undefined;

beforeAll(async () => {
  services = await useTestServices();
  dir = await mkdtemp(join(tmpdir(), 'fsale-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const binary = findBinary('redis-server');
  if (binary === undefined) throw new Error('redis-server not found (apt install redis-server)');
  const port = await freePort();
  redis = spawn(
    binary,
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      join(dir, 'cert.pem'),
      '--tls-key-file',
      join(dir, 'key.pem'),
      '--tls-ca-cert-file',
      join(dir, 'cert.pem'),
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    { stdio: 'ignore' },
  );
  redisUrl = `rediss://127.0.0.1:${port}`;
  await until('the TLS redis-server to listen', () => isListening(redisUrl, 200), 15_000, 25);
});

afterAll(async () => {
  if (api !== undefined && api.child.exitCode === null) {
    api.child.kill('SIGTERM');
    await api.exited;
  }
  if (redis !== undefined && redis.exitCode === null) {
    const exited = new Promise((resolve) => redis?.once('exit', resolve));
    redis.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('Redis over TLS (rediss://)', () => {
  const env = () => ({
    ...services.env,
    REDIS_URL: redisUrl,
    NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
  });

  it('seeds, buys, replays and reads stock over TLS', async () => {
    const seeded = await runCli(['seed', '--product', 'tls1', '--stock', '5'], env());
    expect(seeded.code, seeded.stderr).toBe(0);
    api = startCli(['serve', '--port', '0'], env());
    const url = await api.waitFor(/listening on (http:\/\/[\d.:]+)/);

    const key = freshKey();
    const first = await buy({ url }, { token: tokenFor('tls-user'), productId: 'tls1', key });
    expect(first.status, first.body).toBe(202);
    const replay = await buy({ url }, { token: tokenFor('tls-user'), productId: 'tls1', key });
    expect(replay.status).toBe(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toBe(first.body);
    const product = await send(url, { path: '/products/tls1' });
    expect(JSON.parse(product.body)).toMatchObject({ remaining: 4 });
  });

  it('refuses to start when the server certificate is not trusted', async () => {
    // This process does not trust the certificate: the buy path's client refuses it...
    await expect(RespClient.connect(redisUrl, { name: 'fsale-test-tls' })).rejects.toThrow(
      /cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+\/?: .*self[- ]signed certificate/,
    );
    // ...and so does the whole API.
    const { NODE_EXTRA_CA_CERTS: _trusted, ...untrusted } = env();
    const refused = await runCli(['serve', '--port', '0'], untrusted);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/cannot reach Redis at rediss:\/\/127\.0\.0\.1/);
  });
});
