import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createTokenMinter } from '../auth/tokens.js';
import {
  OrderFollower,
  type FollowOptions,
  type FollowSink,
  type FollowSummary,
} from './follow.js';
import type { AcceptedOrder, FloodRecorder } from './recorder.js';

// --follow in a thread of its own. Following costs the generator's event loop an SSE stream or
// polls per accepted order, and they all start in the same second: the thousand 202s at the
// start of a sale opened as many streams in the sending loop and made it fall hundreds of ms
// behind. In its own thread the follower has its own event loop (and core), and the sending
// loop only posts each accepted order to it.
//
// Clocks: performance.now() counts from each thread's own start, so times cross the thread
// boundary shifted by the difference of the two threads' timeOrigin.

export type FollowerOptions = Omit<FollowOptions, 'token'> & {
  jwtSecret: string;
  tokenTtlSeconds: number;
  userPrefix: string;
};

interface ThreadData {
  kind: 'follow';
  /** A URL does not survive the copy to a thread; its href does. */
  options: Omit<FollowerOptions, 'url'> & { url: string };
  mainOrigin: number;
  startedAt: number;
}

type ToThread =
  | { type: 'track'; orders: AcceptedOrder[]; firstAcceptedAt: number | undefined }
  | { type: 'watchStock' }
  | { type: 'settle'; timeoutMs: number }
  | { type: 'stop' };

type FromThread =
  | { type: 'soldOut'; at: number }
  | { type: 'confirmed'; at: number }
  | { type: 'stock'; at: number; remaining: number }
  | { type: 'unsettled'; count: number }
  | { type: 'settled'; summary: FollowSummary; confirmHistogram: string };

/** The follower as the flood uses it, in this thread or in its own. */
export interface Follower {
  track(order: AcceptedOrder): void;
  watchStock(): void;
  settle(timeoutMs: number, signal: AbortSignal): Promise<void>;
  summary(): FollowSummary;
  /** The time-to-confirm histogram, encoded. */
  confirmHistogram(): string;
  readonly unsettled: number;
  close(): void;
}

const THREAD_FILE = new URL('./follow-thread.js', import.meta.url);

/**
 * A follower in its own thread when this module runs compiled (dist/), else in this thread:
 * tests that import the TypeScript sources have no .js file to start a thread from.
 */
export function startFollower(options: FollowerOptions, recorder: FloodRecorder): Follower {
  if (existsSync(fileURLToPath(THREAD_FILE))) return new ThreadedFollower(options, recorder);
  const mint = createTokenMinter(options.jwtSecret, options.tokenTtlSeconds);
  const tokens = new Map<number, string>();
  return new OrderFollower(
    {
      ...options,
      token: (user) => {
        let token = tokens.get(user);
        if (token === undefined) tokens.set(user, (token = mint(`${options.userPrefix}${user}`)));
        return token;
      },
    },
    recorder,
  );
}

class ThreadedFollower implements Follower {
  private readonly worker: Worker;
  private pending: AcceptedOrder[] = [];
  private flushing = false;
  private last: { summary: FollowSummary; confirmHistogram: string } | undefined;
  private settled: (() => void) | undefined;
  private failure: Error | undefined;
  unsettled = 0;

  constructor(
    options: FollowerOptions,
    private readonly recorder: FloodRecorder,
  ) {
    const data: ThreadData = {
      kind: 'follow',
      options: { ...options, url: options.url.href },
      mainOrigin: performance.timeOrigin,
      startedAt: recorder.startedAt,
    };
    this.worker = new Worker(THREAD_FILE, { workerData: data });
    this.worker.on('message', (message: FromThread) => this.receive(message));
    // A follow thread that dies fails the run at settle(), not silently.
    this.worker.on('error', (error) => {
      this.failure = error;
      this.settled?.();
    });
  }

  private receive(message: FromThread): void {
    switch (message.type) {
      case 'soldOut':
        return this.recorder.soldOut(message.at, 'stock_stream');
      case 'confirmed':
        return this.recorder.confirmed(message.at);
      case 'stock':
        return this.recorder.stockSeen(message.at, message.remaining);
      case 'unsettled':
        this.unsettled = message.count;
        return;
      case 'settled':
        this.last = { summary: message.summary, confirmHistogram: message.confirmHistogram };
        this.unsettled = message.summary.unsettled;
        this.settled?.();
        return;
    }
  }

  private post(message: ToThread): void {
    this.worker.postMessage(message);
  }

  track(order: AcceptedOrder): void {
    this.unsettled += 1;
    this.pending.push(order);
    // One message per turn of the event loop, however many 202s it read.
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      const orders = this.pending;
      this.pending = [];
      this.post({ type: 'track', orders, firstAcceptedAt: this.recorder.firstAcceptedAt });
    });
  }

  watchStock(): void {
    this.post({ type: 'watchStock' });
  }

  async settle(timeoutMs: number, signal: AbortSignal): Promise<void> {
    // Orders still waiting for their turn go first.
    await new Promise((resolve) => setImmediate(resolve));
    const done = new Promise<void>((resolve) => (this.settled = resolve));
    const stop = () => this.post({ type: 'stop' });
    signal.addEventListener('abort', stop, { once: true });
    this.post({ type: 'settle', timeoutMs });
    if (this.failure === undefined) await done;
    signal.removeEventListener('abort', stop);
    if (this.failure !== undefined)
      throw new Error(`the --follow thread failed: ${this.failure.message}`);
  }

  summary(): FollowSummary {
    if (this.last === undefined) throw new Error('the follow thread has not settled');
    return this.last.summary;
  }

  confirmHistogram(): string {
    if (this.last === undefined) throw new Error('the follow thread has not settled');
    return this.last.confirmHistogram;
  }

  close(): void {
    void this.worker.terminate();
  }
}

/** The follow thread itself. */
function runThread(data: ThreadData, port: NonNullable<typeof parentPort>): void {
  const shift = data.mainOrigin - performance.timeOrigin;
  const toHere = (mainTime: number) => mainTime + shift;
  const toMain = (here: number) => here - shift;
  const send = (message: FromThread) => port.postMessage(message);
  const sink: FollowSink & { firstAcceptedAt: number | undefined } = {
    startedAt: toHere(data.startedAt),
    firstAcceptedAt: undefined,
    soldOut: (at) => send({ type: 'soldOut', at: toMain(at) }),
    confirmed: (at) => send({ type: 'confirmed', at: toMain(at) }),
    stockSeen: (at, remaining) => send({ type: 'stock', at: toMain(at), remaining }),
  };
  const mint = createTokenMinter(data.options.jwtSecret, data.options.tokenTtlSeconds);
  const tokens = new Map<number, string>();
  const follower = new OrderFollower(
    {
      ...data.options,
      url: new URL(data.options.url),
      token: (user) => {
        let token = tokens.get(user);
        if (token === undefined)
          tokens.set(user, (token = mint(`${data.options.userPrefix}${user}`)));
        return token;
      },
    },
    sink,
  );
  const progress = setInterval(() => send({ type: 'unsettled', count: follower.unsettled }), 250);
  const stop = new AbortController();
  port.on('message', (message: ToThread) => {
    switch (message.type) {
      case 'track':
        if (message.firstAcceptedAt !== undefined)
          sink.firstAcceptedAt = toHere(message.firstAcceptedAt);
        for (const order of message.orders)
          follower.track({
            ...order,
            clickAt: toHere(order.clickAt),
            acceptedAt: toHere(order.acceptedAt),
          });
        return;
      case 'watchStock':
        return follower.watchStock();
      case 'settle':
        void follower.settle(message.timeoutMs, stop.signal).then(() => {
          clearInterval(progress);
          const summary = follower.summary();
          const confirmHistogram = follower.confirmHistogram();
          follower.close();
          send({ type: 'settled', summary, confirmHistogram });
          port.close();
        });
        return;
      case 'stop':
        stop.abort();
        return;
    }
  });
}

// This module is also loaded by flood threads (--threads), whose workerData is theirs.
const isFollowThread = (data: unknown): data is ThreadData =>
  typeof data === 'object' && data !== null && (data as { kind?: unknown }).kind === 'follow';

if (!isMainThread && parentPort !== null && isFollowThread(workerData))
  runThread(workerData, parentPort);
