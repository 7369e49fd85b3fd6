// The order streams' plumbing: the consumer group, the reads and claims of the order worker
// with their replies checked once, at the edge (ioredis types them as `unknown[]`, so the worker
// never indexes into an unchecked reply), and the one MULTI that settles a handled batch.
import { isCluster, type Redis } from './client.js';
import { idempotencyKey, ORDER_GROUP, type ProductKeys } from './keys.js';
import { deadLetterFields, type DeadLetter } from './dead-letters.js';
import { queueReleaseUnits, type OrderUnits } from './scripts.js';

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

/** Creates the order workers' consumer group (and the stream) if they do not exist yet. */
export async function ensureOrderGroup(redis: Redis, stream: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', stream, ORDER_GROUP, '0', 'MKSTREAM');
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('BUSYGROUP')) throw error;
  }
}

export interface GroupRead {
  consumer: string;
  streams: string[];
  count: number;
  /**
   * `new`: entries never delivered (`>`); `own`: entries already delivered to this consumer
   * name and never acknowledged (`0`, the history read).
   */
  from: 'new' | 'own';
  /** Block this long for new entries; omitted: answer at once. */
  blockMs?: number | undefined;
}

/**
 * XREADGROUP on the order group. On a Redis Cluster every product stream lives in a slot of
 * its own and one XREADGROUP may only name streams of one slot: each stream is read on its own
 * master, all at once, without BLOCK (a blocked read would hold the connection to its node);
 * when none has anything, the read waits a short moment instead, bounded by `blockMs`.
 */
export async function readOrderGroup(redis: Redis, read: GroupRead): Promise<StreamEntries[]> {
  if (!isCluster(redis) || read.streams.length <= 1) return readStreams(redis, read);
  const replies = await Promise.all(
    read.streams.map((stream) =>
      readStreams(redis, { ...read, streams: [stream], blockMs: undefined }),
    ),
  );
  const entries = replies.flat();
  if (entries.length === 0 && read.blockMs !== undefined) {
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(read.blockMs ?? 0, CLUSTER_IDLE_WAIT_MS)),
    );
  }
  return entries;
}

/** How long an idle order worker on a cluster waits between two rounds of reads. */
const CLUSTER_IDLE_WAIT_MS = 50;

async function readStreams(redis: Redis, read: GroupRead): Promise<StreamEntries[]> {
  const ids = read.streams.map(() => (read.from === 'new' ? '>' : '0'));
  const head = ['GROUP', ORDER_GROUP, read.consumer, 'COUNT', read.count] as const;
  const reply =
    read.blockMs === undefined
      ? await redis.xreadgroup(...head, 'STREAMS', ...read.streams, ...ids)
      : await redis.xreadgroup(...head, 'BLOCK', read.blockMs, 'STREAMS', ...read.streams, ...ids);
  return parseReadReply(reply);
}

/** XAUTOCLAIM on the order group: entries idle longer than `idleMs`, whoever owned them. */
export async function claimIdleEntries(
  redis: Redis,
  stream: string,
  consumer: string,
  idleMs: number,
  cursor: string,
  count: number,
): Promise<AutoClaimReply> {
  return parseAutoClaimReply(
    await redis.xautoclaim(stream, ORDER_GROUP, consumer, idleMs, cursor, 'COUNT', count),
  );
}

/** How often each of `entries` was delivered to `consumer` (absent: acknowledged meanwhile). */
export async function deliveryCounts(
  redis: Redis,
  stream: string,
  consumer: string,
  entries: readonly StreamEntry[],
): Promise<Map<string, number>> {
  const first = entries[0];
  const last = entries[entries.length - 1];
  if (first === undefined || last === undefined) return new Map();
  const pending = parsePendingReply(
    await redis.xpending(stream, ORDER_GROUP, first.id, last.id, entries.length + 100, consumer),
  );
  return new Map(pending.map((p) => [p.id, p.deliveries]));
}

/** An order released because another order holds its idempotency key (see the order worker). */
export interface SupersededOrder extends OrderUnits {
  productId: string;
  idempotencyKey: string;
  /** The order that holds the key, and its quantity: the key's answer from now on. */
  holder: string;
  holderRecord: string;
}

export interface SettledEntries {
  /** Every entry of the batch on this stream: acknowledged. */
  ids: string[];
  deadLetters: DeadLetter[];
  superseded: SupersededOrder[];
}

/**
 * Dead-letters, supersedes and acknowledges one stream's share of a batch, atomically (one
 * MULTI). A superseded order's units are released (idempotent per order id, so a redelivery
 * after a crash changes nothing), the key's record is restored to its holder's answer, and
 * the superseded id points at the holder for GET /order/:id.
 */
export async function settleEntries(
  redis: Redis,
  stream: string,
  keys: ProductKeys,
  settled: SettledEntries,
): Promise<void> {
  const multi = redis.multi();
  for (const order of settled.superseded) {
    queueReleaseUnits(multi, keys, order);
    multi.set(idempotencyKey(keys, order.userId, order.idempotencyKey), order.holderRecord);
    multi.hset(keys.superseded, order.orderId, order.holder);
  }
  for (const letter of settled.deadLetters) {
    multi.xadd(keys.deadLetter, '*', ...deadLetterFields(letter));
  }
  multi.xack(stream, ORDER_GROUP, ...settled.ids);
  const results = await multi.exec();
  if (results === null) throw new Error(`MULTI on ${stream} was aborted`);
  for (const [error] of results) if (error !== null) throw error;
}
