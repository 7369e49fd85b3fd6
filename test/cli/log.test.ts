import { describe, expect, it, beforeAll } from 'vitest';
import { formatRecord, parseRecord, readableLine, type LogRecord } from '../../src/cli/log.js';
import { loadConfig } from '../../src/config.js';
import { runCli } from '../helpers/cli.js';
import { memoryLogger } from '../helpers/log.js';
import { startCli } from '../helpers/process.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { stopProcess } from '../helpers/stack.js';
import { runOnTerminal } from '../helpers/terminal.js';

const ESC = '\u001b';

function records(stdout: string): LogRecord[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const record = parseRecord(line);
      if (record === undefined) throw new Error(`not a log record: ${line}`);
      return record;
    });
}

describe('the log level', () => {
  it('comes from --log-level, else LOG_LEVEL, else info; anything else names where it came from', () => {
    expect(loadConfig({}, {}).logLevel).toBe('info');
    expect(loadConfig({}, { LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
    expect(loadConfig({ logLevel: 'warn' }, { LOG_LEVEL: 'debug' }).logLevel).toBe('warn');
    expect(() => loadConfig({}, { LOG_LEVEL: 'loud' })).toThrow(/^LOG_LEVEL: must be one of fatal/);
    expect(() => loadConfig({ logLevel: 'INFO' }, {})).toThrow(/^--log-level: must be one of/);
  });
});

describe('the readable form', () => {
  const at = '2026-01-02T03:04:05.678Z';

  it('is the time, the level, the message and the fields, with the error and every cause', () => {
    const line = formatRecord(
      {
        level: 'error',
        time: at,
        pid: 1,
        name: 'serve',
        msg: 'unhandled error',
        reqId: 'abc',
        err: { type: 'Error', message: 'outer', cause: { type: 'TypeError', message: 'inner' } },
      },
      { rich: false },
    );
    expect(line).toBe(
      '03:04:05.678 ERROR unhandled error reqId=abc (Error: outer <- caused by TypeError: inner)',
    );
  });

  it('shows a status record as its summary, coloured only when the output is rich', () => {
    const status = { level: 'info', time: at, msg: 'passes 1', event: 'status', passes: 1 };
    expect(formatRecord(status, { rich: false })).toBe('03:04:05.678 INFO  passes 1');
    expect(formatRecord(status, { rich: true })).toContain(`${ESC}[32mINFO `);
  });

  it('leaves a line that is no log record as it is (a child that printed plain text)', () => {
    expect(readableLine('plain text', { rich: false })).toBe('plain text');
    expect(readableLine('{"not":"a record"}', { rich: false })).toBe('{"not":"a record"}');
  });
});

describe('a logged error', () => {
  it('carries its cause chain, each with its type, message and stack', () => {
    const memory = memoryLogger();
    const root = new RangeError('disk full');
    memory.logger.error({ err: new Error('batch failed', { cause: root }) }, 'batch failed');
    const err = memory.records[0]?.err as Record<string, unknown>;
    expect(err).toMatchObject({
      type: 'Error',
      message: 'batch failed',
      cause: { type: 'RangeError', message: 'disk full' },
    });
    expect((err.cause as { stack?: string }).stack).toContain('RangeError: disk full');
  });
});

describe('long-running processes', () => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('off a terminal: every line on stdout is a JSON record with level, time and msg; a status record has its fields', async () => {
    const result = await runCli(['reconcile', '--once'], s.env);
    expect(result.code, result.stderr).toBe(0);
    const [done, ...rest] = records(result.stdout);
    expect(rest).toEqual([]);
    expect(done).toMatchObject({
      level: 'info',
      name: 'reconcile',
      event: 'done',
      passes: 1,
      paid: 0,
      failed: 0,
      deferred: 0,
    });
    expect(done?.msg).toMatch(/^passes 1: paid 0 failed 0/);
    expect(Date.parse(done?.time ?? '')).not.toBeNaN();
  });

  it('on a terminal: one readable line per record, no JSON', async () => {
    const terminal = await runOnTerminal(['reconcile', '--once'], s.env);
    expect(terminal).toMatch(/^\d\d:\d\d:\d\d\.\d{3} .*INFO .* passes 1: paid 0 failed 0/m);
    expect(terminal).not.toContain('{');
  }, 30_000);

  it('--log-level warn hides info records; an invalid level is a one-line error, exit 2', async () => {
    const quiet = await runCli(['reconcile', '--once', '--log-level', 'warn'], s.env);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toBe('');

    const flag = await runCli(['reconcile', '--once', '--log-level', 'loud'], s.env);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^fsale: --log-level: must be one of fatal, error, .*"loud"\n$/);
    const env = await runCli(['reconcile', '--once'], { ...s.env, LOG_LEVEL: 'loud' });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/^fsale: LOG_LEVEL: must be one of/);
  });

  it('serve: no record per request at the default level; LOG_LEVEL=debug logs each, with its request id, which the response carries', async () => {
    const quiet = startCli(['serve', '--port', '0'], s.env);
    const quietUrl = await quiet.waitFor(/listening on (http:\/\/[\d.:]+)/);
    const plain = await fetch(`${quietUrl}/healthz`);
    expect(plain.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await stopProcess(quiet);
    const quietRecords = records(quiet.output());
    expect(quietRecords.map((r) => r.msg)).toContain(
      'SIGTERM received, finishing in-flight requests',
    );
    expect(quietRecords.filter((r) => r.reqId !== undefined)).toEqual([]);

    const verbose = startCli(['serve', '--port', '0'], { ...s.env, LOG_LEVEL: 'debug' });
    const url = await verbose.waitFor(/listening on (http:\/\/[\d.:]+)/);
    const traced = await fetch(`${url}/healthz`, { headers: { 'x-request-id': 'trace-me-1' } });
    expect(traced.headers.get('x-request-id')).toBe('trace-me-1');
    await verbose.waitFor(/("reqId":"trace-me-1")/);
    await stopProcess(verbose);
    const line = records(verbose.output()).find((r) => r.reqId === 'trace-me-1');
    expect(line).toMatchObject({
      level: 'debug',
      msg: 'request completed',
      route: '/healthz',
      statusCode: 200,
    });
  }, 60_000);
});
