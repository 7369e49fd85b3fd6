import { Pool, type Dispatcher } from 'undici';
import type { Attempt, AttemptKind, PreparedArrivals, Purchase } from './plan.js';
import { FloodRecorder } from './recorder.js';

// The open model: arrivals come at the times the schedule fixed in advance, whether or not
// earlier requests were answered, like a crowd that does not wait for each other. autocannon
// cannot do this (each of its connections sends its next request only after the previous
// answer), so this is our own loop, on undici: a Pool of keep-alive HTTP/1.1 connections, one
// request on each at a time unless --pipelining asks for more.
//
// What a send costs is the point of this file: a generator that spends more CPU per request
// than the server it drives cannot make the crowd it exists to simulate. So every arrival was
// prepared before the run (PurchasePlan.prepare: time, buyer, key, header list), a send is one
// Pool.dispatch with one small handler object (no closures, no promises, no header objects),
// and an answer is classified and recorded into histograms, nothing more.

export interface TargetOptions {
  url: URL;
  timeoutMs: number;
}

/** Connections opened before the clock starts, to carry this many requests at once. */
export interface WarmUp {
  connections: number;
  /** A cheap GET the API answers (the product page). */
  path: string;
}

export interface OpenModelOptions {
  arrivals: PreparedArrivals;
  /** Every arrival is two simultaneous requests with one key. */
  doubleClick: boolean;
  /** Requests out at once; beyond it arrivals wait (and the run is flagged). */
  maxInFlight: number;
  /** Requests written on one connection before its first answer (1: no pipelining). */
  pipelining: number;
  warmUp: WarmUp | undefined;
}

/**
 * Connections the start of a run needs: the busiest 100 ms of the schedule times a 10 ms
 * answer. Opening them before the clock starts matters: a pool that meets its first thousand
 * arrivals with no connection opens one per arrival while more arrive, a storm of handshakes
 * that stalls both sides for the first second and is then reported as the server's latency.
 */
export function connectionsToWarm(times: Float64Array, maxConnections: number): number {
  let peak = 0;
  for (let head = 0, tail = 0; head < times.length; head++) {
    while ((times[tail] ?? 0) <= (times[head] ?? 0) - 100) tail += 1;
    peak = Math.max(peak, head - tail + 1);
  }
  // `peak` arrivals per 100 ms is 10·peak per second; each holds a connection about 10 ms.
  return Math.min(maxConnections, Math.max(1, Math.ceil(peak / 10)));
}

const REPLAYED_HEADER = 'idempotent-replayed';

/**
 * One request and its answer. undici's original handler callbacks (onConnect, onHeaders,
 * onData, onComplete, onError) are what its HTTP/1.1 client calls natively; the newer
 * controller API is wrapped into them per request, so we use the original one.
 */
class Exchange implements Attempt, Dispatcher.DispatchHandler {
  status = 0;
  replayed = false;
  private chunk: Buffer | undefined;
  private chunks: Buffer[] | undefined;

  constructor(
    private readonly sender: Sender,
    readonly purchase: Purchase,
    readonly kind: AttemptKind,
    readonly intendedAt: number,
  ) {}

  onConnect(): void {
    // Nothing to set up: the request is fully built.
  }

  onHeaders(statusCode: number, headers: Buffer[]): boolean {
    this.status = statusCode;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i];
      if (
        name?.length === REPLAYED_HEADER.length &&
        name.toString('latin1').toLowerCase() === REPLAYED_HEADER
      )
        this.replayed = headers[i + 1]?.toString('latin1') === 'true';
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.chunk === undefined) this.chunk = chunk;
    else (this.chunks ??= [this.chunk]).push(chunk);
    return true;
  }

  onComplete(): void {
    this.sender.answered(this);
  }

  onError(error: Error): void {
    this.sender.failed(this, error);
  }

  body(): string {
    if (this.chunks !== undefined) return Buffer.concat(this.chunks).toString('utf8');
    return this.chunk === undefined ? '' : this.chunk.toString('utf8');
  }
}

/** The connections, the in-flight bound, and what happens when an answer comes. */
class Sender {
  private readonly waiting: (Exchange | undefined)[] = [];
  private waitingHead = 0;
  onIdle: (() => void) | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly recorder: FloodRecorder,
    private readonly maxInFlight: number,
    private readonly request: { method: 'POST' | 'GET'; path: string; body: Buffer | null },
  ) {}

  get idle(): boolean {
    return this.recorder.inFlight === 0 && this.waitingHead === this.waiting.length;
  }

  /** An arrival is due: send it now, or queue it behind the --max-in-flight bound. */
  arrive(exchange: Exchange): void {
    if (this.recorder.inFlight < this.maxInFlight && this.waitingHead === this.waiting.length)
      this.send(exchange, performance.now());
    else {
      this.recorder.inFlightCapHits += 1;
      this.waiting.push(exchange);
    }
  }

  private send(exchange: Exchange, now: number): void {
    this.recorder.recordSend(exchange.kind, now, now - exchange.intendedAt);
    const headers = exchange.purchase.headerList;
    if (headers === undefined) throw new Error('arrival sent before it was prepared');
    const { method, path, body } = this.request;
    this.pool.dispatch({ path, method, headers, body }, exchange);
  }

  answered(exchange: Exchange): void {
    const status = exchange.status;
    // Only bodies that say something are decoded: a 202's order id, a problem's type.
    const body =
      status >= 200 && status < 300 && status !== 202 && status !== 201 ? '' : exchange.body();
    this.recorder.recordAnswer(exchange, status, body, exchange.replayed, performance.now());
    this.next();
  }

  failed(exchange: Exchange, error: Error): void {
    this.recorder.recordNetworkError(exchange, error, performance.now());
    this.next();
  }

  private next(): void {
    if (this.waitingHead < this.waiting.length && this.recorder.inFlight < this.maxInFlight) {
      const exchange = this.waiting[this.waitingHead];
      this.waiting[this.waitingHead] = undefined;
      this.waitingHead += 1;
      if (this.waitingHead === this.waiting.length) this.waiting.length = this.waitingHead = 0;
      if (exchange !== undefined) this.send(exchange, performance.now());
    }
    if (this.onIdle !== undefined && this.idle) this.onIdle();
  }

  /** Arrivals not yet sent are dropped (an abort); what is out still gets its answer. */
  dropWaiting(): void {
    this.waiting.length = this.waitingHead = 0;
  }
}

/**
 * Opens the connections (and warms them) before the clock starts; then run() sends the
 * prepared arrivals at their times and resolves once the last answer is in (or at an abort,
 * once what was out has been answered).
 */
export async function connectOpenModel(
  target: TargetOptions,
  body: string,
  options: OpenModelOptions,
): Promise<(recorder: FloodRecorder, signal: AbortSignal) => Promise<void>> {
  const pool = createPool(target, options);
  if (options.warmUp !== undefined) {
    try {
      await warmUp(pool, options.warmUp);
    } catch (error) {
      await pool.destroy();
      throw error;
    }
  }
  return (recorder, signal) => runOpenModel(pool, body, recorder, options, signal);
}

/** GETs sent in warm-up rounds before the clock starts, and the most time they may take. */
const WARM_UP_REQUESTS = 3000;
const WARM_UP_MS = 1500;

/**
 * Opens the connections and runs the hot path (dispatch, parse, classify, record) on GETs of
 * the product page, into a recorder that is thrown away. A cold process meeting thousands of
 * arrivals a second spends its first second compiling and collecting, falls hundreds of ms
 * behind, and then reports that as the server's latency; warmed, the first second is like the
 * others.
 */
async function warmUp(pool: Pool, options: WarmUp): Promise<void> {
  const recorder = new FloodRecorder();
  const sender = new Sender(pool, recorder, options.connections, {
    method: 'GET',
    path: options.path,
    body: null,
  });
  const purchase: Purchase = { user: 0, key: 'warm-up', headerList: [] };
  const until = performance.now() + WARM_UP_MS;
  const rounds = Math.max(1, Math.ceil(WARM_UP_REQUESTS / options.connections));
  for (let round = 0; round < rounds && performance.now() < until; round++) {
    await new Promise<void>((resolve) => {
      sender.onIdle = resolve;
      for (let i = 0; i < options.connections; i++)
        sender.arrive(new Exchange(sender, purchase, 'first', performance.now()));
    });
    const failed = recorder.counts.network_error;
    if (failed > 0)
      throw new Error(
        `warming up the connections to ${options.path}: ${[...recorder.networkErrors.keys()].join(', ')}`,
      );
  }
}

function createPool(target: TargetOptions, options: OpenModelOptions): Pool {
  return new Pool(target.url.origin, {
    // With one request per connection at a time, in-flight requests need as many
    // connections; undici opens them as needed, up to this.
    connections: Math.ceil(options.maxInFlight / options.pipelining),
    pipelining: options.pipelining,
    headersTimeout: target.timeoutMs,
    bodyTimeout: target.timeoutMs,
    keepAliveTimeout: 60_000,
  });
}

async function runOpenModel(
  pool: Pool,
  body: string,
  recorder: FloodRecorder,
  options: OpenModelOptions,
  signal: AbortSignal,
): Promise<void> {
  const { times, purchases, kinds, count } = options.arrivals;
  const sender = new Sender(pool, recorder, options.maxInFlight, {
    method: 'POST',
    path: '/order/buy',
    body: Buffer.from(body),
  });
  const start = recorder.startedAt;
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  try {
    await new Promise<void>((resolve) => {
      const finishIfDone = () => {
        if ((stopped || next >= count) && sender.idle) resolve();
      };
      sender.onIdle = finishIfDone;
      const pump = () => {
        timer = undefined;
        if (stopped) return;
        const now = performance.now();
        // Everything due is sent now, each with its own intended time: a late timer makes
        // sends late (measured as send lag), never latencies shorter.
        while (next < count) {
          const intendedAt = start + (times[next] ?? 0);
          if (intendedAt > now) break;
          const purchase = purchases[next];
          const kind = kinds[next] ?? 'first';
          next += 1;
          if (purchase === undefined) continue;
          sender.arrive(new Exchange(sender, purchase, kind, intendedAt));
          if (options.doubleClick && kind === 'first')
            sender.arrive(new Exchange(sender, purchase, 'double_click', intendedAt));
        }
        if (next >= count) return finishIfDone();
        // Node timers fire at 1 ms granularity: due arrivals go out in batches, no busy loop.
        const wait = start + (times[next] ?? 0) - performance.now();
        timer = setTimeout(pump, Math.max(1, Math.floor(wait)));
      };
      const abort = () => {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        sender.dropWaiting();
        finishIfDone();
      };
      if (signal.aborted) abort();
      else {
        signal.addEventListener('abort', abort, { once: true });
        pump();
      }
    });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    await pool.destroy();
  }
}
