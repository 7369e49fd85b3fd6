// The one duration syntax of every time flag of every command: a number and a unit, `500ms`,
// `5s`, `2m`, `1h` (decimals allowed: `1.5s`). A bare number is refused, never guessed: the
// commands used to read `5000` as seconds in one place and milliseconds in another.
import { UsageError } from '../domain/errors.js';

export const MS_PER_UNIT = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
type Unit = keyof typeof MS_PER_UNIT;

export const DURATION_FORMS = '500ms, 5s, 2m or 1h';

export class DurationSyntaxError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'DurationSyntaxError';
  }
}

/** Milliseconds from `500ms`, `5s`, `1.5m`, `1h`; `what` names the flag in the error. */
export function parseDuration(text: string, what: string): number {
  const trimmed = text.trim();
  const match = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)$/.exec(trimmed);
  if (match === null) {
    const reason = /^\d+(?:\.\d+)?$/.test(trimmed)
      ? `${trimmed} has no unit`
      : `${JSON.stringify(text)} is not a duration`;
    throw new DurationSyntaxError(`${what}: ${reason}; give a duration such as ${DURATION_FORMS}`);
  }
  return Number(match[1]) * MS_PER_UNIT[match[2] as Unit];
}

/** The shortest exact spelling of `ms` in the duration syntax (`90s`, `10m`, `250ms`). */
export function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    const value = ms / MS_PER_UNIT[unit];
    if (ms !== 0 && Number.isInteger(value)) return `${value}${unit}`;
  }
  return `${ms}ms`;
}

/** Checks a parsed duration against its bounds; the message names the flag. */
export function checkDuration(ms: number, what: string, min?: number, max?: number): number {
  if (min !== undefined && ms < min)
    throw new DurationSyntaxError(`${what} must be at least ${formatDuration(min)}`);
  if (max !== undefined && ms > max)
    throw new DurationSyntaxError(`${what} must be at most ${formatDuration(max)}`);
  return ms;
}
