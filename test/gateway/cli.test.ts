// `fsale gateway` as a real child process of the built CLI (run `npm run build` first).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_RATES, drawOutcome } from '../../src/gateway/behaviour.js';
import { RUN_JS, runCli } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { stopProcess } from '../helpers/stack.js';

interface RunningGateway {
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  // Only the gateways this file started, and only those still running.
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

/** Starts `fsale gateway ...args` and resolves once it prints the URL it listens on. */
function startGateway(args: string[], env: Record<string, string> = {}): Promise<RunningGateway> {
  const child = spawn(process.execPath, [RUN_JS, 'gateway', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /gateway listening on (http:\/\/[\d.:]+)/.exec(stdout);
      if (match?.[1] !== undefined) resolve({ child, url: match[1], exited });
    });
    void exited.then(({ code }) =>
      reject(new Error(`gateway exited (${code}) before listening: ${stdout}${stderr}`)),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function charge(url: string, key: string): Promise<Response> {
  return fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ orderId: key, amountCents: 1999 }),
  });
}

describe('fsale gateway (the command)', () => {
  it('explains itself in --help, with examples and the in-memory ledger', async () => {
    const help = await runCli(['gateway', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('EXAMPLES');
    expect(help.stdout).toContain('--seed');
    expect(help.stdout).toContain('--speed');
    expect(help.stdout).toMatch(/ledger is in memory/);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`starts on a free port, answers charges and exits 0 on ${signal}`, async () => {
      const gateway = await startGateway(['--port', '0', '--seed', '7', '--speed', '100']);
      expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(gateway.url).not.toMatch(/:0$/);

      const health = await (await fetch(`${gateway.url}/healthz`)).json();
      expect(health).toMatchObject({ status: 'ok', seed: 7, speed: 100 });
      expect([201, 402, 429, 503]).toContain((await charge(gateway.url, 'order-1')).status);

      gateway.child.kill(signal);
      expect(await gateway.exited).toEqual({ code: 0, signal: null });
    });
  }

  it('answers a charge in flight before it exits on SIGTERM', async () => {
    // Speed 0.01: the median charge takes 65 s, far longer than this test.
    const gateway = await startGateway(['--port', '0', '--seed', '1', '--speed', '0.01']);
    // Any answer will do, but it must come: a key whose first draw is not a hang.
    const model = { seed: 1, speed: 0.01, rates: { ...DEFAULT_RATES } };
    let key = 'in-flight-0';
    for (let i = 1; drawOutcome(model, key, 0).kind === 'hang'; i++) key = `in-flight-${i}`;
    const pending = charge(gateway.url, key);
    for (let polls = 0; ; polls++) {
      expect(polls, 'the charge never showed as in flight').toBeLessThan(5000);
      const state = await fetch(`${gateway.url}/charges/${key}`);
      await state.body?.cancel();
      if (state.status === 409) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    gateway.child.kill('SIGTERM');
    expect([201, 402, 429, 503]).toContain((await pending).status);
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
  });

  it('listens on the port of FSALE_GATEWAY_URL by default', async () => {
    const port = await freePort();
    const gateway = await startGateway(['--speed', '100'], {
      FSALE_GATEWAY_URL: `http://127.0.0.1:${port}`,
    });
    expect(gateway.url).toBe(`http://127.0.0.1:${port}`);
    gateway.child.kill('SIGTERM');
    expect((await gateway.exited).code).toBe(0);
  });

  it('exits 2 with one line when the port is taken or a flag is wrong', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      const busy = await runCli(['gateway', '--port', String(port)]);
      expect(busy.code).toBe(2);
      expect(busy.stderr).toMatch(/^fsale: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
    for (const args of [
      ['--speed', '0'],
      ['--speed', 'fast'],
      ['--seed', '-1'],
      ['--port', '70000'],
    ]) {
      const wrong = await runCli(['gateway', ...args]);
      expect(wrong.code, args.join(' ')).toBe(2);
      expect(wrong.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('serves charges by outcome, their latency and its process metrics on --admin-port, and /healthz', async () => {
    const gateway = startCli(
      ['gateway', '--port', '0', '--seed', '11', '--speed', '100', '--admin-port', '0'],
      {},
    );
    try {
      const admin = await gateway.waitFor(/admin listener on (http:\/\/[\d.:]+)/);
      const url = await gateway.waitFor(/gateway listening on (http:\/\/[\d.:]+)/);
      expect(new URL(admin).hostname, 'the default --admin-host').toBe('127.0.0.1');
      expect((await fetch(`${admin}/healthz`)).status).toBe(200);
      // The admin port is not the public one: no charges there, no metrics on the public one.
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
      const model = { seed: 11, speed: 100, rates: { ...DEFAULT_RATES } };
      const statuses = new Map<number, number>();
      for (let i = 0; statuses.size < 2 || i < 40; i++) {
        const key = `order-${i}`;
        if (drawOutcome(model, key, 0).kind === 'hang') continue;
        const status = (await charge(url, key)).status;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      const text = await (await fetch(`${admin}/metrics`)).text();
      const outcome: Record<number, string> = {
        201: 'succeeded',
        402: 'declined',
        429: 'rate_limited',
        503: 'unavailable',
      };
      for (const [status, n] of statuses) {
        expect(text).toContain(`fsale_gateway_charges_total{outcome="${outcome[status]}"} ${n}`);
      }
      const answered = [...statuses.values()].reduce((a, b) => a + b, 0);
      expect(text).toMatch(/^# TYPE fsale_gateway_charge_duration_seconds histogram$/m);
      const counts = [...text.matchAll(/^fsale_gateway_charge_duration_seconds_count\S* (\d+)$/gm)];
      expect(counts.reduce((sum, m) => sum + Number(m[1]), 0)).toBe(answered);
      expect(text).toMatch(/^fsale_gateway_process_cpu_seconds_total /m);
      expect(text).toMatch(/^fsale_gateway_nodejs_eventloop_lag_p99_seconds /m);
    } finally {
      expect(await stopProcess(gateway)).toEqual({ code: 0, signal: null });
    }
  });

  it('exits 2 with one line when the admin port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      const busy = await runCli(['gateway', '--port', '0', '--admin-port', String(port)]);
      expect(busy.code).toBe(2);
      expect(busy.stderr).toMatch(
        /^fsale: --admin-port: http:\/\/127\.0\.0\.1:\d+ is already in use\n$/,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
