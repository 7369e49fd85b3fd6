// The built CLI's commands and their flags, as oclif loads them from dist/ (what a user runs).
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';

export interface CliCommand {
  /** The words that run it: ['work', 'orders']. */
  words: string[];
  flags: Record<
    string,
    { type: string; helpValue?: string | string[] | undefined; hidden?: boolean }
  >;
  /** Flags that must be given for the command to parse at all. */
  required: string[];
}

export async function cliCommands(): Promise<CliCommand[]> {
  const config = await Config.load(fileURLToPath(new URL('../../', import.meta.url)));
  return config.commands
    .filter((command) => !command.hidden)
    .map((command) => ({
      words: command.id.split(':'),
      flags: command.flags,
      required: Object.entries(command.flags)
        .filter(([, flag]) => flag.required === true)
        .map(([name]) => name),
    }))
    .sort((a, b) => a.words.join(' ').localeCompare(b.words.join(' ')));
}
