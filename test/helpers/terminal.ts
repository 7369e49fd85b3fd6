// The built CLI on a pseudo-terminal (util-linux `script`), as a person at a terminal sees it.
import { execFile } from 'node:child_process';
import { RUN_JS } from './cli.js';

/**
 * Runs the built CLI on a pseudo-terminal (util-linux `script`), as a person at a terminal;
 * `redirect` sends its stdout or stderr to a file instead, as `fsale ... > file` would.
 */
export function runOnTerminal(
  args: string[],
  env: Record<string, string>,
  interruptAfterSeconds?: number,
  redirect: { stdout?: string; stderr?: string } = {},
): Promise<string> {
  const timeout =
    interruptAfterSeconds === undefined
      ? []
      : ['timeout', '-s', 'INT', String(interruptAfterSeconds)];
  const command =
    [...timeout, process.execPath, RUN_JS, ...args].map((a) => `'${a}'`).join(' ') +
    (redirect.stdout === undefined ? '' : ` > '${redirect.stdout}'`) +
    (redirect.stderr === undefined ? '' : ` 2> '${redirect.stderr}'`);
  return new Promise((resolve) => {
    execFile(
      'script',
      ['-qec', command, '/dev/null'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          TERM: 'xterm-256color',
          ...env,
        },
      },
      (_error, stdout) => resolve(stdout),
    );
  });
}
