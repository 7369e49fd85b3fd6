import { describe, expect, it } from 'vitest';
import { DurationSyntaxError, formatDuration, parseDuration } from '../../src/cli/duration.js';
import { runCli } from '../helpers/cli.js';
import { cliCommands } from '../helpers/cli-commands.js';

const SECRET = { FSALE_JWT_SECRET: 'a-test-secret-of-32-characters!!' };

describe('the duration syntax', () => {
  it('reads 500ms, 5s, 2m, 1h and decimals as milliseconds', () => {
    expect(parseDuration('500ms', '--x')).toBe(500);
    expect(parseDuration('5s', '--x')).toBe(5000);
    expect(parseDuration('2m', '--x')).toBe(120_000);
    expect(parseDuration('1h', '--x')).toBe(3_600_000);
    expect(parseDuration('1.5s', '--x')).toBe(1500);
    expect(parseDuration(' 0s ', '--x')).toBe(0);
  });

  it('refuses a bare number, naming the flag and the accepted forms', () => {
    expect(() => parseDuration('5000', '--timeout')).toThrow(DurationSyntaxError);
    expect(() => parseDuration('5000', '--timeout')).toThrow(
      '--timeout: 5000 has no unit; give a duration such as 500ms, 5s, 2m or 1h',
    );
    for (const bad of ['', 's', '5 s', '5sec', '-5s', '5d', '1m30s', 'soon'])
      expect(() => parseDuration(bad, '--x'), bad).toThrow(/--x: .* is not a duration/);
  });

  it('prints the shortest exact spelling, which parses back to the same value', () => {
    for (const [ms, text] of [
      [250, '250ms'],
      [1000, '1s'],
      [90_000, '90s'],
      [600_000, '10m'],
      [86_400_000, '24h'],
      [1500, '1500ms'],
      [0, '0ms'],
    ] as const) {
      expect(formatDuration(ms)).toBe(text);
      expect(parseDuration(text, '--x')).toBe(ms);
    }
  });
});

describe('every time flag of every command', () => {
  it('no flag is named after a unit: time flags take a duration, not a number of ms', async () => {
    const commands = await cliCommands();
    expect(commands.length).toBeGreaterThan(10);
    const named = commands.flatMap((c) =>
      Object.keys(c.flags)
        .filter((flag) => /-(ms|seconds|secs)$/.test(flag))
        .map((flag) => `${c.words.join(' ')} --${flag}`),
    );
    expect(named).toEqual([]);
  });

  it('refuses a bare number with a one-line error and exit 2, before doing anything', async () => {
    const commands = await cliCommands();
    const cases = commands.flatMap((c) =>
      Object.entries(c.flags)
        .filter(([, flag]) => flag.helpValue === 'DURATION')
        .map(([flag]) => ({ command: c, flag })),
    );
    // The time flags the issue names are among them, in each command that has one.
    const names = new Set(cases.map((k) => `${k.command.words.join(' ')} --${k.flag}`));
    for (const expected of [
      'flood --timeout',
      'work payments --timeout',
      'reconcile --interval',
      'watch --interval',
      'serve --durability-timeout',
      'serve --rate-window',
      'serve --sse-drop-after',
      'serve --max-event-loop-delay',
      'token --ttl',
    ])
      expect(names, expected).toContain(expected);

    const results: string[] = [];
    // Two at a time: each is a process start on a shared machine.
    for (let i = 0; i < cases.length; i += 2) {
      await Promise.all(
        cases.slice(i, i + 2).map(async ({ command, flag }) => {
          const required = command.required.flatMap((name) => [`--${name}`, 'p1']);
          const result = await runCli([...command.words, ...required, `--${flag}`, '5000'], SECRET);
          const line = `${command.words.join(' ')} --${flag}`;
          expect(result.code, `${line}: ${result.stderr}`).toBe(2);
          expect(result.stderr, line).toBe(
            `fsale: --${flag}: 5000 has no unit; give a duration such as 500ms, 5s, 2m or 1h (see --help)\n`,
          );
          results.push(line);
        }),
      );
    }
    expect(results.length).toBe(cases.length);
  }, 120_000);

  it('takes the duration syntax: token --ttl 90s signs a token that lasts 90 seconds', async () => {
    const result = await runCli(['token', '--user', 'alice', '--ttl', '90s', '--json'], SECRET);
    expect(result.code, result.stderr).toBe(0);
    const { token } = JSON.parse(result.stdout) as { token: string };
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
      exp: number;
      iat: number;
    };
    expect(payload.exp - payload.iat).toBe(90);
  });

  it('checks bounds in the same syntax: serve --sse-max-age below 1s is refused', async () => {
    const result = await runCli(['serve', '--sse-max-age', '500ms'], SECRET);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('fsale: --sse-max-age must be at least 1s (see --help)\n');
  });
});
