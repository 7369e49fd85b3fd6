import { Agent, request } from 'node:http';
import { EventSource } from 'eventsource';
import { TERMINAL_STATUSES, type OrderStatus } from '../domain/order-status.js';
import {
  encodeHistogram,
  latencyStats,
  newHistogram,
  recordMs,
  type LatencyStats,
} from './latency.js';
import type { AcceptedOrder } from './recorder.js';

/** What the follower tells the run: the FloodRecorder, or its stand-in in a follow thread. */
export interface FollowSink {
  readonly startedAt: number;
  readonly firstAcceptedAt: number | undefined;
  soldOut(at: number, source: 'stock_stream'): void;
  confirmed(at: number): void;
  /** Stock remaining, as the stock stream said at `at`. */
  stockSeen(at: number, remaining: number): void;
}

// --follow: every accepted order is tracked to a terminal state (paid or payment_failed).
// The first `maxStreams` open orders each get an SSE stream (GET /order/:id/stream, exact
// confirmation times); the rest, and any whose stream fails, are polled with GET /order/:id
// at a bounded concurrency. Thousands of SSE streams would cost the API (and this process)
// a socket and a subscription each for the whole run; polling costs one small request per
// order per interval, and the cap keeps the follow traffic from competing with the buys.
// Streamed orders are also polled, rarely: a stream opened just as the order changed can
// miss that change (the API reads the current status, then subscribes), and would then wait
// forever for an event already sent. Such misses are counted.

export interface FollowOptions {
  url: URL;
  productId: string;
  /** Orders followed over SSE at once. */
  maxStreams: number;
  pollIntervalMs: number;
  pollConcurrency: number;
  token: (user: number) => string;
}

export interface FollowSummary {
  followed: number;
  viaStream: number;
  viaPolling: number;
  /** Streams that failed and fell back to polling. */
  streamFallbacks: number;
  /** Streamed orders whose terminal state a safety poll saw first (the stream missed it). */
  streamMisses: number;
  pollRequests: number;
  pollErrors: number;
  paid: number;
  paymentFailed: number;
  needsReconciliation: number;
  /** Not terminal (paid or payment_failed) when following stopped. */
  unsettled: number;
  byStatus: Record<string, number>;
  /** Click (intended send) to the confirmation being seen, over paid orders. */
  timeToConfirmMs: LatencyStats | null;
  /** Paid orders per second, from the first 202 to the last confirmation. */
  fulfilledPerSecond: number | null;
  /** ms from the start of the run. */
  lastConfirmedAtMs: number | null;
  /** Whether every followed order was terminal before the follow timeout. */
  complete: boolean;
}

interface Followed {
  order: AcceptedOrder;
  status: OrderStatus;
  stream: EventSource | undefined;
  nextPollAt: number;
}

const ORDER_EVENTS = [
  'order_queued',
  'order_persisted',
  'order_confirmed',
  'payment_failed',
  'needs_reconciliation',
] as const;

/** MessageEvent is a DOM type this Node-only build does not include; the payload is a string. */
const eventData = (event: unknown) => (event as { data: string }).data;

const isTerminal = (status: OrderStatus) =>
  (TERMINAL_STATUSES as readonly string[]).includes(status);

function statusOf(json: string): OrderStatus | undefined {
  try {
    const value = JSON.parse(json) as { status?: unknown };
    return typeof value.status === 'string' ? (value.status as OrderStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** Streamed orders are polled this many times less often than polled ones. */
const STREAM_SAFETY_FACTOR = 5;

export class OrderFollower {
  /** Open orders, oldest first (Map order), both streamed and polled. */
  private readonly open = new Map<string, Followed>();
  private readonly byStatus = new Map<string, number>();
  private readonly confirm = newHistogram();
  private readonly agent: Agent;
  private streams = 0;
  private followed = 0;
  private viaStream = 0;
  private streamFallbacks = 0;
  private streamMisses = 0;
  private pollRequests = 0;
  private pollErrors = 0;
  private polling = 0;
  private lastConfirmedAt: number | undefined;
  private stockStream: EventSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private idle: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly options: FollowOptions,
    private readonly recorder: FollowSink,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: options.pollConcurrency });
    this.timer = setInterval(() => this.poll(), Math.min(100, options.pollIntervalMs));
  }

  /** Watches the product's stock stream: stock 0 is a sign of sold out (with the 409s). */
  watchStock(): void {
    const url = new URL(
      `/stock/${encodeURIComponent(this.options.productId)}/stream`,
      this.options.url,
    );
    const source = new EventSource(url);
    source.addEventListener('stock', (event) => {
      const data = JSON.parse(eventData(event)) as { remaining?: number; soldOut?: boolean };
      const now = performance.now();
      if (typeof data.remaining === 'number') this.recorder.stockSeen(now, data.remaining);
      if (data.soldOut === true) this.recorder.soldOut(now, 'stock_stream');
    });
    // A missing stream only costs the stock-stream sign; the 409 sold_out answers remain.
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) this.stockStream = undefined;
    });
    this.stockStream = source;
  }

  track(order: AcceptedOrder): void {
    if (this.closed || this.open.has(order.orderId)) return;
    this.followed += 1;
    const followed: Followed = { order, status: 'queued', stream: undefined, nextPollAt: 0 };
    this.open.set(order.orderId, followed);
    if (this.streams < this.options.maxStreams) this.openStream(followed);
    followed.nextPollAt = performance.now() + this.pollInterval(followed);
  }

  private pollInterval(followed: Followed): number {
    return followed.stream === undefined
      ? this.options.pollIntervalMs
      : this.options.pollIntervalMs * STREAM_SAFETY_FACTOR;
  }

  private openStream(followed: Followed): void {
    const { orderId, user } = followed.order;
    const url = new URL(`/order/${orderId}/stream`, this.options.url);
    url.searchParams.set('access_token', this.options.token(user));
    const source = new EventSource(url);
    followed.stream = source;
    this.streams += 1;
    this.viaStream += 1;
    for (const name of ORDER_EVENTS) {
      source.addEventListener(name, (event) => {
        const status = statusOf(eventData(event));
        if (status !== undefined) this.update(followed, status);
      });
    }
    source.addEventListener('error', () => {
      if (!this.open.has(orderId)) return;
      // Refused (the API is at its stream limit) or broken: poll this one instead.
      this.closeStream(followed);
      this.streamFallbacks += 1;
      followed.nextPollAt = performance.now();
    });
  }

  private closeStream(followed: Followed): void {
    if (followed.stream === undefined) return;
    followed.stream.close();
    followed.stream = undefined;
    this.streams -= 1;
  }

  private update(followed: Followed, status: OrderStatus): void {
    if (!this.open.has(followed.order.orderId) || status === followed.status) return;
    followed.status = status;
    if (!isTerminal(status)) return;
    const now = performance.now();
    this.open.delete(followed.order.orderId);
    this.closeStream(followed);
    this.count(status);
    if (status === 'paid') {
      recordMs(this.confirm, now - followed.order.clickAt);
      this.lastConfirmedAt = now;
      this.recorder.confirmed(now);
    }
    if (this.open.size === 0) this.idle?.();
  }

  private count(status: OrderStatus): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  /** Polls the orders that are due, oldest first, at most `pollConcurrency` at a time. */
  private poll(): void {
    const now = performance.now();
    for (const followed of this.open.values()) {
      if (this.polling >= this.options.pollConcurrency) break;
      if (followed.nextPollAt > now) continue;
      followed.nextPollAt = Number.POSITIVE_INFINITY; // in flight
      this.polling += 1;
      this.pollRequests += 1;
      const settle = (status: OrderStatus | undefined) => {
        this.polling -= 1;
        followed.nextPollAt = performance.now() + this.pollInterval(followed);
        if (status === undefined) return void (this.pollErrors += 1);
        if (
          followed.stream !== undefined &&
          isTerminal(status) &&
          this.open.has(followed.order.orderId)
        )
          this.streamMisses += 1;
        this.update(followed, status);
      };
      this.fetchStatus(followed.order).then(settle, () => settle(undefined));
    }
  }

  private fetchStatus(order: AcceptedOrder): Promise<OrderStatus | undefined> {
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(`/order/${order.orderId}`, this.options.url),
        {
          agent: this.agent,
          headers: { authorization: `Bearer ${this.options.token(order.user)}` },
          timeout: 10_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve(res.statusCode === 200 ? statusOf(body) : undefined));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  /** Resolves once every followed order is terminal, or after `timeoutMs`, or on abort. */
  async settle(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.open.size === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.idle = undefined;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      this.idle = done;
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const followed of this.open.values()) this.closeStream(followed);
    this.stockStream?.close();
    this.agent.destroy();
  }

  /** Followed orders not terminal yet. */
  get unsettled(): number {
    return this.open.size;
  }

  /** The time-to-confirm histogram, encoded (lossless, for merging threads and parts). */
  confirmHistogram(): string {
    return encodeHistogram(this.confirm);
  }

  summary(): FollowSummary {
    const byStatus = Object.fromEntries(this.byStatus);
    for (const followed of this.open.values())
      byStatus[followed.status] = (byStatus[followed.status] ?? 0) + 1;
    const paid = byStatus.paid ?? 0;
    const first = this.recorder.firstAcceptedAt;
    const span =
      first !== undefined && this.lastConfirmedAt !== undefined
        ? (this.lastConfirmedAt - first) / 1000
        : 0;
    return {
      followed: this.followed,
      viaStream: this.viaStream,
      viaPolling: this.followed - this.viaStream + this.streamFallbacks,
      streamFallbacks: this.streamFallbacks,
      streamMisses: this.streamMisses,
      pollRequests: this.pollRequests,
      pollErrors: this.pollErrors,
      paid,
      paymentFailed: byStatus.payment_failed ?? 0,
      needsReconciliation: byStatus.needs_reconciliation ?? 0,
      unsettled: this.open.size,
      byStatus,
      timeToConfirmMs: latencyStats(this.confirm),
      fulfilledPerSecond: span > 0 ? Math.round((paid / span) * 100) / 100 : null,
      lastConfirmedAtMs:
        this.lastConfirmedAt === undefined
          ? null
          : Math.round(this.lastConfirmedAt - this.recorder.startedAt),
      complete: this.open.size === 0,
    };
  }
}
