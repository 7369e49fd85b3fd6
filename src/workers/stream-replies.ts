// Typed views of the raw Redis Streams replies the order worker reads. ioredis types them as
// `unknown[]`; these functions check the shape once, at the edge, so the worker never indexes
// into an unchecked reply.

/** One stream entry. `fields` is null when the entry was deleted from the stream (XDEL). */
export interface StreamEntry {
  id: string;
  fields: string[] | null;
}

export interface StreamEntries {
  stream: string;
  entries: StreamEntry[];
}

export interface AutoClaimReply {
  /** Cursor for the next XAUTOCLAIM call; `0-0` once the whole pending list was scanned. */
  next: string;
  entries: StreamEntry[];
  /** Ids that were pending but no longer exist in the stream (removed from the PEL by Redis). */
  deleted: string[];
}

export interface PendingEntry {
  id: string;
  consumer: string;
  idleMs: number;
  deliveries: number;
}

export class UnexpectedReplyError extends Error {
  constructor(command: string, reply: unknown) {
    // JSON.stringify returns undefined for undefined, whatever its declared type says.
    const text = JSON.stringify(reply) as string | undefined;
    super(`unexpected ${command} reply: ${(text ?? 'undefined').slice(0, 200)}`);
    this.name = 'UnexpectedReplyError';
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function entry(raw: unknown, command: string): StreamEntry {
  if (!Array.isArray(raw) || typeof raw[0] !== 'string')
    throw new UnexpectedReplyError(command, raw);
  const fields: unknown = raw[1];
  if (fields === null || fields === undefined) return { id: raw[0], fields: null };
  if (!isStringArray(fields)) throw new UnexpectedReplyError(command, raw);
  return { id: raw[0], fields };
}

/** XREADGROUP / XREAD: null on timeout, else `[[stream, [[id, fields], ...]], ...]`. */
export function parseReadReply(reply: unknown): StreamEntries[] {
  if (reply === null || reply === undefined) return [];
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('XREADGROUP', reply);
  return reply.map((item: unknown) => {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1])) {
      throw new UnexpectedReplyError('XREADGROUP', item);
    }
    const entries: unknown[] = item[1];
    return { stream: item[0], entries: entries.map((raw) => entry(raw, 'XREADGROUP')) };
  });
}

/** XAUTOCLAIM (Redis >= 7): `[next, [[id, fields], ...], [deletedId, ...]]`. */
export function parseAutoClaimReply(reply: unknown): AutoClaimReply {
  if (!Array.isArray(reply) || typeof reply[0] !== 'string' || !Array.isArray(reply[1])) {
    throw new UnexpectedReplyError('XAUTOCLAIM', reply);
  }
  const entries: unknown[] = reply[1];
  const deleted: unknown = reply[2] ?? [];
  if (!isStringArray(deleted)) throw new UnexpectedReplyError('XAUTOCLAIM', reply);
  return {
    next: reply[0],
    // Redis 6.2 reports a deleted entry as a nil in place; 7.x lists it in `deleted` instead.
    entries: entries.filter((raw) => raw !== null).map((raw) => entry(raw, 'XAUTOCLAIM')),
    deleted,
  };
}

/** The extended form of XPENDING: `[[id, consumer, idleMs, deliveries], ...]`. */
export function parsePendingReply(reply: unknown): PendingEntry[] {
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('XPENDING', reply);
  return reply.map((item: unknown) => {
    if (
      !Array.isArray(item) ||
      typeof item[0] !== 'string' ||
      typeof item[1] !== 'string' ||
      typeof item[2] !== 'number' ||
      typeof item[3] !== 'number'
    ) {
      throw new UnexpectedReplyError('XPENDING', item);
    }
    return { id: item[0], consumer: item[1], idleMs: item[2], deliveries: item[3] };
  });
}

/** Milliseconds since the epoch at which Redis appended the entry (the `<ms>-<seq>` id). */
export function entryTime(id: string): number {
  const dash = id.indexOf('-');
  const ms = Number(dash === -1 ? id : id.slice(0, dash));
  return Number.isFinite(ms) ? ms : 0;
}
