import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeComment, encodeRetry } from './sse.js';
import {
  sseBudgetsFor,
  type SseBudgets,
  type StreamBudget,
  type StreamKind,
} from './sse-budget.js';

export interface SseHubOptions {
  /** At most one event per topic per client per interval (coalescing). */
  intervalMs: number;
  /** A comment line at least this often, so proxies and idle timers keep the stream. */
  heartbeatMs: number;
  /**
   * Streams per process of each kind, and per owner (a client address for anonymous stock
   * streams, a user for order streams); beyond either a client gets a retry hint and is closed.
   */
  budgets: SseBudgets;
  /** A client whose socket has not drained for this long is dropped. */
  dropAfterMs: number;
  /** Reconnection delay sent to clients. */
  retryMs: number;
  /**
   * A stream is ended after this long (less up to a quarter, per client, so they do not all
   * reconnect at once); the client reconnects with Last-Event-ID and gets the current state.
   */
  maxAgeMs: number;
}

export const DEFAULT_SSE: SseHubOptions = {
  intervalMs: 100,
  heartbeatMs: 15_000,
  budgets: sseBudgetsFor(),
  dropAfterMs: 30_000,
  retryMs: 2_000,
  maxAgeMs: 10 * 60_000,
};

/** Which budget a stream counts against, and whose share of it. */
export interface StreamClaim {
  kind: StreamKind;
  /** The client's address (stock streams) or user id (order streams). */
  owner: string;
}

/** Options as callers give them: any field, and any single budget number, may be left out. */
export type SseHubSettings = Partial<Omit<SseHubOptions, 'budgets'>> & {
  budgets?: Partial<Record<StreamKind, Partial<StreamBudget>>>;
};

export function resolveSseOptions(
  settings: SseHubSettings = {},
  base: SseHubOptions = DEFAULT_SSE,
): SseHubOptions {
  const { budgets, ...rest } = settings;
  return {
    ...base,
    ...rest,
    budgets: {
      stock: { ...base.budgets.stock, ...budgets?.stock },
      order: { ...base.budgets.order, ...budgets?.order },
    },
  };
}

interface Client {
  res: ServerResponse;
  topic: string;
  claim: StreamClaim;
  /** The latest event the socket had no room for; sent when it drains. */
  pending: Buffer | undefined;
  stalledSince: number | undefined;
  expiry: NodeJS.Timeout;
}

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx: do not buffer this response.
  'x-accel-buffering': 'no',
};

/**
 * The SSE clients of one process, grouped by topic ("stock:<productId>", "order:<orderId>").
 * `publish` only records the latest encoded event of a topic; a timer sends each dirty topic's
 * latest event once per interval, so a burst of 1,000 stock changes costs each client at most
 * one write per interval. A slow client is skipped (it gets the latest event when its socket
 * drains) and dropped after `dropAfterMs`, so it can neither delay the others nor grow memory.
 *
 * Node only sees a stalled socket once the kernel's send buffer is full, and the kernel grows
 * that buffer to megabytes: a client that stops reading can hold minutes of events there before
 * the drop rule notices. Every stream therefore ends at `maxAgeMs`, which bounds what any client
 * can hold to one max age of events.
 */
export class SseHub {
  private readonly topics = new Map<string, Set<Client>>();
  private readonly latest = new Map<string, string>();
  private readonly dirty = new Set<string>();
  /** Topics a request is about to open (it is reading the snapshot): keep their events. */
  private readonly watched = new Map<string, number>();
  private clients = 0;
  /** Open streams per kind, and per owner within a kind. */
  private readonly streams = {
    stock: { total: 0, byOwner: new Map<string, number>() },
    order: { total: 0, byOwner: new Map<string, number>() },
  };
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** Counters for /metrics and tests. */
  readonly stats = { delivered: 0, skipped: 0, dropped: 0, refused: 0, expired: 0 };

  constructor(readonly options: SseHubOptions = DEFAULT_SSE) {
    this.timers.push(setInterval(() => this.flush(), options.intervalMs));
    this.timers.push(setInterval(() => this.heartbeat(), options.heartbeatMs));
    for (const timer of this.timers) timer.unref();
  }

  get size(): number {
    return this.clients;
  }

  /** Open streams of one kind (and of one owner of that kind). */
  count(kind: StreamKind, owner?: string): number {
    const open = this.streams[kind];
    return owner === undefined ? open.total : (open.byOwner.get(owner) ?? 0);
  }

  private hasRoom({ kind, owner }: StreamClaim): boolean {
    const budget = this.options.budgets[kind];
    return this.count(kind) < budget.total && this.count(kind, owner) < budget.perOwner;
  }

  /**
   * Starts a stream on `res`: headers, retry hint, then `initial` (the current state, unless the
   * client already has it). Returns false when the claim's budget is full (the kind's total or
   * the owner's share): the client got 200 with a retry hint and the stream is closed (a
   * 4xx/5xx would stop browsers from reconnecting). Separate budgets keep anonymous stock
   * streams, which anyone can open, from taking the slots of owners following their orders.
   */
  open(
    req: IncomingMessage,
    res: ServerResponse,
    topic: string,
    initial: string | undefined,
    claim: StreamClaim,
  ): boolean {
    // HEAD has no body, and Node sends a HEAD response's headers only on end(): a stream opened
    // for it would leave the client waiting forever while it holds a client slot.
    if (req.method === 'HEAD') {
      res.writeHead(200, HEADERS);
      res.end();
      return false;
    }
    if (this.closed || !this.hasRoom(claim)) {
      this.stats.refused += 1;
      res.writeHead(200, HEADERS);
      res.end(encodeRetry(this.options.retryMs * 2));
      return false;
    }
    // The stream outlives the server's idle timeout; heartbeats and the drop rule police it.
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, HEADERS);
    res.write(encodeRetry(this.options.retryMs) + (initial ?? ''));
    const age = this.options.maxAgeMs * (0.75 + Math.random() * 0.25);
    const client: Client = {
      res,
      topic,
      claim,
      pending: undefined,
      stalledSince: undefined,
      expiry: setTimeout(() => this.expire(client), age).unref(),
    };
    let set = this.topics.get(topic);
    if (set === undefined) {
      set = new Set();
      this.topics.set(topic, set);
    }
    set.add(client);
    this.clients += 1;
    const open = this.streams[claim.kind];
    open.total += 1;
    open.byOwner.set(claim.owner, (open.byOwner.get(claim.owner) ?? 0) + 1);
    // An event that arrived while the snapshot was being read goes out on the next tick.
    if (this.latest.has(topic)) this.dirty.add(topic);
    res.on('drain', () => {
      client.stalledSince = undefined;
      if (client.pending !== undefined) {
        const event = client.pending;
        client.pending = undefined;
        this.send(client, event, Date.now());
      }
    });
    res.once('close', () => this.remove(client));
    return true;
  }

  /**
   * Keeps a topic's events while a request reads its snapshot and until it opens the stream:
   * an event published in between is then delivered after the snapshot, not lost. Returns the
   * release function (call it in `finally`).
   */
  watch(topic: string): () => void {
    this.watched.set(topic, (this.watched.get(topic) ?? 0) + 1);
    return () => {
      const left = (this.watched.get(topic) ?? 1) - 1;
      if (left > 0) this.watched.set(topic, left);
      else {
        this.watched.delete(topic);
        if (!this.topics.has(topic)) {
          this.latest.delete(topic);
          this.dirty.delete(topic);
        }
      }
    };
  }

  /**
   * Records the latest event of a topic; it goes out on the next tick. `encode` runs only when
   * someone listens (every accepted buy publishes; most topics have no client here).
   */
  publish(topic: string, encode: () => string): void {
    if (!this.topics.has(topic) && !this.watched.has(topic)) return;
    this.latest.set(topic, encode());
    this.dirty.add(topic);
  }

  /** Ends every stream with a retry hint (graceful shutdown) and stops the timers. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const set of this.topics.values()) {
      for (const client of set) {
        clearTimeout(client.expiry);
        client.res.end(encodeRetry(this.options.retryMs));
      }
    }
  }

  private send(client: Client, event: Buffer, now: number): void {
    if (client.res.writableNeedDrain) {
      client.pending = event;
      client.stalledSince ??= now;
      this.stats.skipped += 1;
      if (now - client.stalledSince > this.options.dropAfterMs) this.drop(client);
      return;
    }
    client.res.write(event);
    this.stats.delivered += 1;
  }

  private flush(): void {
    if (this.dirty.size === 0) return this.dropStalled();
    const now = Date.now();
    for (const topic of this.dirty) {
      const encoded = this.latest.get(topic);
      const set = this.topics.get(topic);
      if (encoded === undefined || set === undefined) continue;
      // Encoded once for all its clients, not once per socket write.
      const event = Buffer.from(encoded);
      for (const client of set) this.send(client, event, now);
    }
    this.dirty.clear();
  }

  private heartbeat(): void {
    const beat = Buffer.from(encodeComment('hb'));
    const now = Date.now();
    for (const set of this.topics.values()) {
      for (const client of set) {
        if (client.res.writableNeedDrain) client.stalledSince ??= now;
        else client.res.write(beat);
      }
    }
    this.dropStalled(now);
  }

  private dropStalled(now = Date.now()): void {
    for (const set of this.topics.values()) {
      for (const client of set) {
        if (
          client.stalledSince !== undefined &&
          now - client.stalledSince > this.options.dropAfterMs
        ) {
          this.drop(client);
        }
      }
    }
  }

  /**
   * Ends a stream at its max age. A client with bytes still queued in Node is not reading: it is
   * dropped. Any other gets a `retry: 0` hint, so it reconnects at once (with Last-Event-ID), and
   * the connection is closed, not kept alive: a client that stops reading now holds nothing here,
   * and one that never takes the end is cut after `dropAfterMs`.
   */
  private expire(client: Client): void {
    const { res } = client;
    if (res.writableLength > 0) return this.drop(client);
    this.stats.expired += 1;
    this.remove(client);
    const socket = res.socket;
    res.end(encodeRetry(0));
    socket?.end();
    socket?.setTimeout(this.options.dropAfterMs, () => socket.destroy());
  }

  private drop(client: Client): void {
    this.stats.dropped += 1;
    client.res.destroy();
    this.remove(client);
  }

  private remove(client: Client): void {
    const set = this.topics.get(client.topic);
    if (set?.delete(client) !== true) return;
    clearTimeout(client.expiry);
    this.clients -= 1;
    const open = this.streams[client.claim.kind];
    open.total -= 1;
    const left = (open.byOwner.get(client.claim.owner) ?? 1) - 1;
    if (left > 0) open.byOwner.set(client.claim.owner, left);
    else open.byOwner.delete(client.claim.owner);
    if (set.size === 0) {
      this.topics.delete(client.topic);
      this.latest.delete(client.topic);
      this.dirty.delete(client.topic);
    }
  }
}
