import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { outputStyle, renderTable } from '../../src/cli/colors.js';
import { claimDatabaseForStack } from '../../src/db/stack-lock.js';
import { runCli } from '../helpers/cli.js';
import { seed, startApi, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { runOnTerminal } from '../helpers/terminal.js';

const ESC = '\u001b';
const BOX = /[─│┌┐└┘├┤┬┴┼]/;

describe('the output style decision', () => {
  it('is rich only on a terminal without NO_COLOR or TERM=dumb', () => {
    expect(outputStyle({ isTTY: true }, {}).rich).toBe(true);
    expect(outputStyle({ isTTY: false }, {}).rich).toBe(false);
    expect(outputStyle({}, {}).rich).toBe(false);
    expect(outputStyle({ isTTY: true }, { NO_COLOR: '1' }).rich).toBe(false);
    // https://no-color.org: set and not empty.
    expect(outputStyle({ isTTY: true }, { NO_COLOR: '' }).rich).toBe(true);
    expect(outputStyle({ isTTY: true }, { TERM: 'dumb' }).rich).toBe(false);
  });

  it('prints a plain table as columns aligned with spaces', () => {
    expect(
      renderTable(
        { rich: false },
        [
          ['no oversell', 'OK'],
          ['conservation', 'FAIL'],
        ],
        ['invariant', 'result'],
      ),
    ).toBe('invariant     result\nno oversell   OK\nconservation  FAIL');
    expect(renderTable({ rich: true }, [['a', 'b']], ['x', 'y'])).toMatch(BOX);
  });
});

describe('commands through a pipe, and with NO_COLOR', () => {
  let s: TestServices;
  let api: RunningApi;
  beforeAll(async () => {
    s = await useTestServices();
    await seed(s, { productId: 'styled', stock: 5 });
    api = await startApi(s);
  });

  it('fsale demo colours its progress lines by where they go, stderr, not by stdout', async () => {
    // Another stack holds the database: demo says it is starting (stderr), then exits 2.
    const claim = await claimDatabaseForStack(s.databaseUrl);
    const dir = await mkdtemp(join(tmpdir(), 'fsale-demo-style-'));
    try {
      const args = ['demo', '--data-dir', dir, '--rate', '100'];
      // stderr on the terminal, stdout to a file: coloured.
      const onTerminal = await runOnTerminal(args, s.env, undefined, {
        stdout: join(dir, 'out'),
      });
      expect(onTerminal).toMatch(/demo .*\| starting the stack/);
      expect(onTerminal).toMatch(/another fsale stack/);
      expect(onTerminal).toContain(`${ESC}[`);
      // stdout on the terminal, stderr to a file: the file is plain.
      await runOnTerminal(args, s.env, undefined, { stderr: join(dir, 'err') });
      const logged = await readFile(join(dir, 'err'), 'utf8');
      expect(logged).toMatch(/^demo +\| starting the stack/m);
      expect(logged).not.toContain(ESC);
    } finally {
      await claim.release();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('fsale audit: box-drawn, coloured table on a terminal; plain columns, no escape byte, through a pipe or with NO_COLOR', async () => {
    const args = ['audit', '--product', 'styled', '--no-gateway'];
    const terminal = await runOnTerminal(args, s.env);
    expect(terminal).toMatch(BOX);
    expect(terminal).toContain(ESC);

    const piped = await runCli(args, s.env);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).not.toContain(ESC);
    expect(piped.stdout).not.toMatch(BOX);
    expect(piped.stdout).toMatch(/^invariant +expected +actual +result$/m);
    expect(piped.stdout).toMatch(/^styled: no oversell .* OK$/m);

    const noColor = await runOnTerminal(args, { ...s.env, NO_COLOR: '1' });
    expect(noColor).toMatch(/invariant +expected +actual +result/);
    expect(noColor).not.toContain(ESC);
    expect(noColor).not.toMatch(BOX);
  }, 30_000);

  it('fsale watch: redraws in place with unicode blocks on a terminal; with NO_COLOR, plain ASCII lines', async () => {
    // `timeout` sends the Ctrl-C a person would, after a few snapshots.
    const args = ['watch', '--product', 'styled', '--url', api.url, '--interval', '100ms'];
    const terminal = await runOnTerminal(args, s.env, 4);
    expect(terminal).toContain(`${ESC}[2K`);
    expect(terminal).toMatch(/over time █+/);

    const noColor = await runOnTerminal(args, { ...s.env, NO_COLOR: '1' }, 4);
    expect(noColor).toMatch(/styled remaining 5\/5 accepted\/s 0 released\/s 0 .* stock \[#+\]/);
    expect(noColor).not.toContain(ESC);
    expect(noColor).toMatch(/^[\x20-\x7e\r\n]*$/);
  }, 30_000);
});
