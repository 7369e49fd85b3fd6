import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

// Every error a person can cause is one line on stderr, `fsale: <what>`, and exit 2.
const ONE_LINE = /^fsale: [^\n]+\n$/;

describe('errors', () => {
  let s: TestServices;
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    s = await useTestServices();
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  it('an unknown command: one line naming it and the commands there are, exit 2', async () => {
    for (const words of [['nope'], ['work', 'nope']]) {
      const result = await runCli(words);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(ONE_LINE);
      expect(result.stderr).toContain(`unknown command "${words.join(' ')}"`);
      expect(result.stderr).toContain('work orders');
      expect(result.stdout).toBe('');
    }
  });

  it('is the same format as a bad flag value', async () => {
    const result = await runCli(['watch', '--product', 'p1', '--interval', 'soon']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(ONE_LINE);
  });

  it('serve on a port already taken: one line and exit 2, like gateway, with one process or several', async () => {
    const gateway = await runCli(['gateway', '--port', String(port)]);
    expect(gateway.code).toBe(2);
    expect(gateway.stderr).toMatch(ONE_LINE);
    for (const workers of ['1', '2']) {
      const serve = await runCli(
        ['serve', '--port', String(port), '--api-workers', workers],
        s.env,
      );
      expect(serve.code, serve.stderr).toBe(2);
      expect(serve.stderr).toMatch(ONE_LINE);
      expect(serve.stderr).toMatch(
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
      );
    }
  }, 30_000);
});
