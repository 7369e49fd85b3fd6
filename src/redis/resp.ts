import { createHash } from 'node:crypto';

// RESP2, the Redis wire protocol, as the buy path's own client speaks it (src/redis/resp-client.ts):
// commands encoded as arrays of bulk strings, replies decoded from a byte stream that may cut a
// reply anywhere, and the script descriptors those commands carry. No sockets here.

/** A RESP2 reply: simple and bulk strings, integers, nil and arrays (error replies reject). */
export type RespReply = string | number | null | RespReply[];

/** An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`): the command reached Redis. */
export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyError';
  }
}

/** Bytes that are not RESP2: the stream is out of step and nothing after them can be trusted. */
export class RespProtocolError extends Error {}

/** A Lua script called by SHA, with its source for the EVAL fallback after a SCRIPT FLUSH. */
export interface LuaScript {
  source: string;
  numberOfKeys: number;
  sha: string;
}

export function luaScript(source: string, numberOfKeys: number): LuaScript {
  return { source, numberOfKeys, sha: createHash('sha1').update(source).digest('hex') };
}

/** `--durability replica`: a write counts once this many replicas have it (WAIT). */
export interface Durability {
  replicas: number;
  timeoutMs: number;
}

/** Whether a write under `durability` is followed by a WAIT before its reply counts. */
export function waitsForReplicas(durability: Durability | undefined): durability is Durability {
  return durability !== undefined && durability.replicas > 0;
}

/**
 * Fewer than `durability.replicas` replicas acknowledged a write (WAIT) within the timeout: a
 * transient reply (503), the write is on the master and maybe on no replica.
 */
export function notReplicated(acked: unknown, durability: Durability): RedisReplyError {
  return new RedisReplyError(
    `NOREPLICAS ${String(acked)} of ${durability.replicas} replicas acknowledged within ${durability.timeoutMs} ms`,
  );
}

/** Whether `error` is NOREPLICAS: a write no replica acknowledged in time (or refused for want of one). */
export function isNotReplicated(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOREPLICAS');
}

/** One command as RESP2 puts it on the wire: an array of bulk strings. */
export function encodeCommand(args: readonly (string | number)[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const text = typeof arg === 'number' ? String(arg) : arg;
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  }
  return out;
}

const INCOMPLETE = Symbol('incomplete');
const CR = 13;

/**
 * Turns the bytes of one connection into replies, in order. A reply cut across chunks is kept
 * until the rest arrives; `reset` forgets it (a new connection starts a new stream).
 */
export class RespDecoder {
  private rest: Buffer | undefined;
  private position = 0;

  /**
   * Hands every complete reply in what has arrived so far to `onReply`, which returns false to
   * stop at once (the stream is no longer wanted). Throws RespProtocolError on bytes that are
   * not RESP2.
   */
  decode(chunk: Buffer, onReply: (reply: RespReply | RedisReplyError) => boolean): void {
    const buffer = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.position = 0;
    while (this.position < buffer.length) {
      const start = this.position;
      const reply = this.parse(buffer);
      if (reply === INCOMPLETE) {
        this.position = start;
        break;
      }
      if (!onReply(reply)) return;
    }
    this.rest = this.position < buffer.length ? buffer.subarray(this.position) : undefined;
  }

  reset(): void {
    this.rest = undefined;
  }

  /** Parses one reply at `this.position`, advancing it; INCOMPLETE when more bytes are needed. */
  private parse(buffer: Buffer): RespReply | RedisReplyError | typeof INCOMPLETE {
    const type = buffer[this.position];
    const lineEnd = buffer.indexOf(CR, this.position + 1);
    if (type === undefined || lineEnd === -1 || lineEnd + 1 >= buffer.length) return INCOMPLETE;
    const lineStart = this.position + 1;
    this.position = lineEnd + 2;
    switch (type) {
      case 0x2b: // + simple string
        return buffer.toString('utf8', lineStart, lineEnd);
      case 0x2d: // - error
        return new RedisReplyError(buffer.toString('utf8', lineStart, lineEnd));
      case 0x3a: // : integer
        return parseInteger(buffer, lineStart, lineEnd);
      case 0x24: {
        // $ bulk string
        const length = parseInteger(buffer, lineStart, lineEnd);
        if (length < 0) return null;
        const end = this.position + length;
        if (end + 2 > buffer.length) return INCOMPLETE;
        const text = buffer.toString('utf8', this.position, end);
        this.position = end + 2;
        return text;
      }
      case 0x2a: {
        // * array
        const count = parseInteger(buffer, lineStart, lineEnd);
        if (count < 0) return null;
        const items: RespReply[] = [];
        for (let i = 0; i < count; i += 1) {
          const item = this.parse(buffer);
          if (item === INCOMPLETE) return INCOMPLETE;
          // An error inside an array (EXEC) is kept as its message; scripts' errors are top level.
          items.push(item instanceof RedisReplyError ? item.message : item);
        }
        return items;
      }
      default:
        this.rest = undefined;
        throw new RespProtocolError(`unexpected RESP type byte ${type}`);
    }
  }
}

function parseInteger(buffer: Buffer, start: number, end: number): number {
  let negative = false;
  let i = start;
  if (buffer[i] === 0x2d) {
    negative = true;
    i += 1;
  }
  let value = 0;
  for (; i < end; i += 1) value = value * 10 + ((buffer[i] ?? 0x30) - 0x30);
  return negative ? -value : value;
}
