// An unknown command is bad input like any other: one line on stderr in the format of every
// fsale error (src/cli/base.ts), exit 2, instead of oclif's boxed "Error: command x not found".
import type { Hook } from '@oclif/core';

const hook: Hook.CommandNotFound = async function (options) {
  const typed = options.id.split(':').join(' ');
  const known = options.config.commands
    .filter((command) => !command.hidden)
    .map((command) => command.id.split(':').join(' '))
    .sort()
    .join(', ');
  process.stderr.write(
    `fsale: unknown command "${typed}"; the commands are ${known} (see --help)\n`,
  );
  process.exitCode = 2;
};

export default hook;
