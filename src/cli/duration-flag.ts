// The oclif flag of the duration syntax (src/cli/duration.ts), kept apart so that the load
// engine's worker threads can parse durations without loading oclif.
import { Flags, type Interfaces } from '@oclif/core';
import { checkDuration, formatDuration, parseDuration } from './duration.js';

interface DurationFlagOptions {
  description: string;
  /** In ms; shown in the help in the duration syntax. */
  default?: number;
  /** Smallest value accepted, ms. */
  min?: number;
  /** Largest value accepted, ms. */
  max?: number;
  /** What the value is rounded to: whole ms by default, whole seconds for JWT lifetimes. */
  unit?: 'ms' | 's';
  helpGroup?: string;
  dependsOn?: string[];
  exclusive?: string[];
}

/**
 * A time flag: takes the duration syntax and yields milliseconds (or whole seconds with
 * `unit: 's'`), so no command parses a time of its own.
 */
export function durationFlag(
  options: DurationFlagOptions & { default: number },
): Interfaces.OptionFlag<number>;
export function durationFlag(
  options: DurationFlagOptions,
): Interfaces.OptionFlag<number | undefined>;
export function durationFlag(
  options: DurationFlagOptions,
): Interfaces.OptionFlag<number> | Interfaces.OptionFlag<number | undefined> {
  const per = options.unit === 's' ? 1000 : 1;
  const base = {
    description: options.description,
    ...(options.helpGroup === undefined ? {} : { helpGroup: options.helpGroup }),
    ...(options.dependsOn === undefined ? {} : { dependsOn: options.dependsOn }),
    ...(options.exclusive === undefined ? {} : { exclusive: options.exclusive }),
    helpValue: 'DURATION',
    parse: async (input: string, _ctx: unknown, flag: { name: string }) => {
      const what = `--${flag.name}`;
      const ms = checkDuration(parseDuration(input, what), what, options.min, options.max);
      return Math.round(ms / per);
    },
  };
  if (options.default === undefined) return Flags.custom<number>(base)();
  return Flags.custom<number>({
    ...base,
    default: Math.round(options.default / per),
    defaultHelp: async () => formatDuration(options.default ?? 0),
  })();
}
