// The one logger of every long-running process (serve and its cluster primary, the workers,
// reconcile, the gateway): pino, writing one record per line on stdout, next to the status
// records that were always there (src/cli/long-running.ts). Off a terminal (or with --json)
// each record is a JSON line; on a terminal it is one readable line. stderr stays for the
// one-line error a command exits with (src/cli/base.ts). Levels: --log-level, LOG_LEVEL
// (src/config.ts). See the README, "Logs".
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';
import { outputStyle, type OutputStyle } from './colors.js';
import type { LogLevel } from '../config.js';

export type { Logger };

export interface LoggerOptions {
  /** The process (`serve`, `work orders`, ...): every record's `name`. */
  name: string;
  level: LogLevel;
  /** JSON lines; the readable form otherwise. Default: JSON unless stdout is a terminal. */
  json?: boolean;
  /** Where the lines go (default stdout, written synchronously so none is lost on exit). */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const out = options.destination ?? pino.destination({ fd: 1, sync: true });
  const json = options.json ?? !process.stdout.isTTY;
  return pino(
    {
      name: options.name,
      level: options.level,
      // The pid tells the processes of `serve --api-workers N` apart; the host is the
      // collector's business.
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // The whole cause chain, each cause with its own type, message and stack.
      serializers: { err: stdSerializers.errWithCause },
    },
    json ? out : readableDestination(out, outputStyle()),
  );
}

/** A record as it is written (level as its label: see createLogger's formatters). */
export interface LogRecord {
  level: string;
  time: string;
  msg: string;
  [field: string]: unknown;
}

/** The record a JSON line holds, or undefined when the line is no log record. */
export function parseRecord(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as Record<string, unknown>;
    return typeof value.level === 'string' &&
      typeof value.time === 'string' &&
      typeof value.msg === 'string'
      ? (value as LogRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

const LEVEL_COLOURS: Record<string, number> = {
  fatal: 35,
  error: 31,
  warn: 33,
  info: 32,
  debug: 36,
  trace: 90,
};
/** Fields every record has, shown by the readable form in their own place or not at all. */
const FRAME = new Set(['level', 'time', 'msg', 'pid', 'name', 'hostname', 'err']);

interface SerializedCause {
  type?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The error and its causes, outermost first: `TypeError: x <- caused by Error: y`. */
function errorChain(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; typeof current === 'object' && current !== null && depth < 10; depth++) {
    const { type, message, cause } = current as SerializedCause;
    parts.push(
      `${typeof type === 'string' ? `${type}: ` : ''}${typeof message === 'string' ? message : ''}`,
    );
    current = cause;
  }
  return parts.join(' <- caused by ');
}

/** A field whose value the message already says (`listening on <url>`) is not said twice. */
function saidInMessage(msg: string, value: unknown): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  const text = String(value);
  return text.length >= 3 && msg.includes(text);
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

/**
 * A record as one line for a person: time, level, message, then the record's own fields
 * (`reqId=...`) and the error with its causes. A status record (it has an `event`) shows its
 * message only: that message is the human summary of its fields.
 */
export function formatRecord(record: LogRecord, style: OutputStyle): string {
  const time = record.time.slice(11, 23);
  const label = record.level.toUpperCase().padEnd(5);
  const colour = LEVEL_COLOURS[record.level];
  const level = style.rich && colour !== undefined ? `\x1b[${colour}m${label}\x1b[0m` : label;
  const fields =
    record.event === undefined
      ? Object.entries(record)
          .filter(([key, value]) => !FRAME.has(key) && !saidInMessage(record.msg, value))
          .map(([key, value]) => ` ${key}=${fieldValue(value)}`)
          .join('')
      : '';
  const err = record.err === undefined ? '' : ` (${errorChain(record.err)})`;
  return `${time} ${level} ${record.msg}${fields}${err}`;
}

/** A line from a child process (`fsale up`, `fsale demo`): a log record made readable. */
export function readableLine(line: string, style: OutputStyle): string {
  const record = parseRecord(line);
  return record === undefined ? line : formatRecord(record, style);
}

function readableDestination(out: DestinationStream, style: OutputStyle): DestinationStream {
  return {
    write(line: string) {
      out.write(`${readableLine(line.trimEnd(), style)}\n`);
    },
  };
}
