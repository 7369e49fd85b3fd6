import type { Histogram } from './latency.js';
import { encodeHistogram, latencyStats, newHistogram, recordMs } from './latency.js';
import {
  OUTCOME_CLASSES,
  acceptedOrderId,
  classify,
  problemType,
  type OutcomeClass,
} from './outcomes.js';
import type { Attempt, AttemptKind } from './plan.js';

// Everything measured while the flood runs. All times are performance.now() values (a
// monotonic clock); the summary turns them into offsets from the start and ISO dates.

export interface AcceptedOrder {
  orderId: string;
  user: number;
  /** The click (intended send) and the 202's arrival. */
  clickAt: number;
  acceptedAt: number;
}

export interface TimelineRow {
  /** Start of the row's bucket, seconds from the start (0, 1, 2... or 0.1, 0.2... when fine). */
  second: number;
  /** Arrivals the schedule asked for in this second (open model), else null. */
  target: number | null;
  sent: number;
  answered: number;
  outcomes: Record<OutcomeClass, number>;
  /** Latency of the requests answered in this second, ms. */
  p50: number | null;
  p99: number | null;
  max: number | null;
  /** Followed orders seen confirmed in this second. */
  confirmed: number;
  /** The generator's worst send lag in this second (ms), and the most requests out at once. */
  sendLagMax: number;
  inFlightMax: number;
}

const zeroOutcomes = (): Record<OutcomeClass, number> =>
  Object.fromEntries(OUTCOME_CLASSES.map((c) => [c, 0])) as Record<OutcomeClass, number>;

/** A run planned shorter than this also gets a timeline in FINE_BUCKET_MS buckets. */
export const FINE_TIMELINE_BELOW_SECONDS = 10;
export const FINE_BUCKET_MS = 100;

/**
 * Counts per bucket of time (a second, or 100 ms for a short run's fine timeline), and the
 * latency of each bucket's answers: one histogram, reused, whose buckets are kept encoded
 * (`encoded[i]`, lossless) so that the rows of threads and machines can be merged.
 */
export class Timeline {
  readonly rows: TimelineRow[] = [];
  /** Each row's latency histogram (encodeHistogram), null when nothing was answered in it. */
  readonly encoded: (string | null)[] = [];
  private readonly current: Histogram = newHistogram();
  private currentBucket = -1;

  constructor(
    private readonly startedAt: number,
    readonly bucketMs = 1000,
  ) {}

  secondOf(at: number): number {
    return Math.max(0, Math.floor((at - this.startedAt) / this.bucketMs));
  }

  row(bucket: number): TimelineRow {
    for (let b = this.rows.length; b <= bucket; b++) {
      this.rows.push({
        second: Math.round(b * this.bucketMs) / 1000,
        target: null,
        sent: 0,
        answered: 0,
        outcomes: zeroOutcomes(),
        p50: null,
        p99: null,
        max: null,
        confirmed: 0,
        sendLagMax: 0,
        inFlightMax: 0,
      });
      this.encoded.push(null);
    }
    const row = this.rows[bucket];
    if (row === undefined) throw new Error(`no timeline row ${bucket}`);
    return row;
  }

  sent(at: number, lagMs: number, inFlight: number): void {
    const row = this.row(this.secondOf(at));
    row.sent += 1;
    if (lagMs > row.sendLagMax) row.sendLagMax = Math.round(lagMs * 1000) / 1000;
    if (inFlight > row.inFlightMax) row.inFlightMax = inFlight;
  }

  answered(at: number, outcome: OutcomeClass, latencyMs: number | undefined): void {
    const bucket = this.secondOf(at);
    const row = this.row(bucket);
    row.outcomes[outcome] += 1;
    if (latencyMs === undefined) return;
    row.answered += 1;
    // Answers arrive in time order, so only the current bucket's histogram is ever open.
    if (bucket !== this.currentBucket) {
      this.close();
      this.currentBucket = bucket;
    }
    recordMs(this.current, latencyMs);
  }

  confirmed(at: number): void {
    this.row(this.secondOf(at)).confirmed += 1;
  }

  /** Writes the open bucket's latency into its row. */
  close(): void {
    const stats = latencyStats(this.current);
    const row = this.rows[this.currentBucket];
    if (stats !== null && row !== undefined) {
      row.p50 = stats.p50;
      row.p99 = stats.p99;
      row.max = stats.max;
      this.encoded[this.currentBucket] = encodeHistogram(this.current);
    }
    this.current.reset();
  }
}

/** Stock remaining as the stock stream told it, at most one sample per bucket (the last). */
export interface StockSample {
  /** ms from the start of the run. */
  atMs: number;
  remaining: number;
}

const STOCK_SAMPLE_MS = 100;

export interface SecondReservation {
  key: string;
  orderIds: string[];
}

export interface RecorderOptions {
  /** performance.now() of the run's start (default: now); threads and parts share one. */
  startedAt?: number | undefined;
  /** Also keep a timeline in FINE_BUCKET_MS buckets (short runs). */
  fine?: boolean | undefined;
}

export class FloodRecorder {
  readonly startedAt: number;
  readonly startedWall: number;
  readonly timeline: Timeline;
  readonly fine: Timeline | undefined;
  readonly stock: StockSample[] = [];

  constructor(options: RecorderOptions = {}) {
    this.startedAt = options.startedAt ?? performance.now();
    this.startedWall = Math.round(performance.timeOrigin + this.startedAt);
    this.timeline = new Timeline(this.startedAt);
    this.fine = options.fine === true ? new Timeline(this.startedAt, FINE_BUCKET_MS) : undefined;
  }

  sent = 0;
  readonly sentByKind: Record<AttemptKind, number> = { first: 0, retry: 0, double_click: 0 };
  answered = 0;
  readonly counts = zeroOutcomes();
  readonly byClass = Object.fromEntries(OUTCOME_CLASSES.map((c) => [c, newHistogram()])) as Record<
    OutcomeClass,
    Histogram
  >;
  /** Every answered request (network errors have no answer and are not in it). */
  readonly all = newHistogram();
  readonly statusCodes = new Map<number, number>();
  readonly problems = new Map<string, number>();
  readonly networkErrors = new Map<string, number>();
  replays = 0;
  /** Idempotency key → the first order id it was answered with. */
  private readonly keyOrders = new Map<string, string>();
  readonly orderIds = new Set<string>();
  /** When each new order id was accepted, ms from the start. */
  readonly orderTimes: number[] = [];
  secondReservations = 0;
  readonly secondReservationExamples: SecondReservation[] = [];

  firstAcceptedAt: number | undefined;
  firstSoldOutAt: number | undefined;
  soldOutSource: 'response' | 'stock_stream' | undefined;
  lastAnswerAt: number | undefined;
  lastSendAt: number | undefined;

  /** How late the generator sent, ms (open model only). */
  readonly sendLag = newHistogram();
  /** Arrivals that had to wait because --max-in-flight requests were already out. */
  inFlightCapHits = 0;
  inFlight = 0;
  maxInFlight = 0;

  /** Called once per new order id (for --follow). */
  onAccepted: ((order: AcceptedOrder) => void) | undefined;

  recordSend(kind: AttemptKind, at: number, lagMs?: number): void {
    this.sent += 1;
    this.sentByKind[kind] += 1;
    this.inFlight += 1;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    this.lastSendAt = at;
    this.timeline.sent(at, lagMs ?? 0, this.inFlight);
    this.fine?.sent(at, lagMs ?? 0, this.inFlight);
    if (lagMs !== undefined) recordMs(this.sendLag, Math.max(0, lagMs));
  }

  recordAnswer(
    attempt: Attempt,
    status: number,
    body: string,
    replayed: boolean,
    at: number,
  ): OutcomeClass {
    this.inFlight -= 1;
    this.answered += 1;
    this.lastAnswerAt = at;
    const problem = status < 300 ? undefined : problemType(body);
    const outcome = classify(status, problem);
    const latencyMs = at - attempt.intendedAt;
    this.counts[outcome] += 1;
    recordMs(this.byClass[outcome], latencyMs);
    recordMs(this.all, latencyMs);
    this.timeline.answered(at, outcome, latencyMs);
    this.fine?.answered(at, outcome, latencyMs);
    this.statusCodes.set(status, (this.statusCodes.get(status) ?? 0) + 1);
    if (problem !== undefined) this.problems.set(problem, (this.problems.get(problem) ?? 0) + 1);
    if (replayed) this.replays += 1;

    if (outcome === 'accepted') {
      this.firstAcceptedAt ??= at;
      const orderId = acceptedOrderId(body);
      if (orderId !== undefined) this.accepted(attempt, orderId, at);
    } else if (outcome === 'sold_out') {
      this.soldOut(at, 'response');
    }
    return outcome;
  }

  private accepted(attempt: Attempt, orderId: string, at: number): void {
    const key = attempt.purchase.key;
    const first = this.keyOrders.get(key);
    if (first === undefined) this.keyOrders.set(key, orderId);
    else if (first !== orderId && !this.orderIds.has(orderId)) {
      // The same key reserved twice: the one thing idempotency exists to prevent.
      this.secondReservations += 1;
      if (this.secondReservationExamples.length < 10)
        this.secondReservationExamples.push({ key, orderIds: [first, orderId] });
    }
    if (this.orderIds.has(orderId)) return;
    this.orderIds.add(orderId);
    this.orderTimes.push(Math.max(0, Math.round(at - this.startedAt)));
    this.onAccepted?.({
      orderId,
      user: attempt.purchase.user,
      clickAt: attempt.intendedAt,
      acceptedAt: at,
    });
  }

  /** A followed order seen confirmed. */
  confirmed(at: number): void {
    this.timeline.confirmed(at);
    this.fine?.confirmed(at);
  }

  /** The stock stream's remaining count, seen at `at`. */
  stockSeen(at: number, remaining: number): void {
    const atMs = Math.max(0, Math.round(at - this.startedAt));
    const last = this.stock.at(-1);
    if (
      last !== undefined &&
      Math.floor(last.atMs / STOCK_SAMPLE_MS) === Math.floor(atMs / STOCK_SAMPLE_MS)
    ) {
      last.remaining = remaining;
      return;
    }
    if (last?.remaining === remaining) return;
    this.stock.push({ atMs, remaining });
  }

  /** The first sign that the product sold out: a 409 sold_out or the stock stream at 0. */
  soldOut(at: number, source: 'response' | 'stock_stream'): void {
    // Before the first 202 it is a sale that was over before we came, not a sell-out we saw.
    if (this.firstAcceptedAt === undefined || at < this.firstAcceptedAt) return;
    if (this.firstSoldOutAt !== undefined && this.firstSoldOutAt <= at) return;
    this.firstSoldOutAt = at;
    this.soldOutSource = source;
  }

  recordNetworkError(attempt: Attempt, error: unknown, at: number): void {
    this.inFlight -= 1;
    this.lastAnswerAt = at;
    this.counts.network_error += 1;
    recordMs(this.byClass.network_error, at - attempt.intendedAt);
    this.timeline.answered(at, 'network_error', undefined);
    this.fine?.answered(at, 'network_error', undefined);
    const code = networkErrorCode(error);
    this.networkErrors.set(code, (this.networkErrors.get(code) ?? 0) + 1);
  }
}

export function networkErrorCode(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    if (/timed? ?out|no answer within/i.test(error.message)) return 'TIMEOUT';
    return error.message.slice(0, 60);
  }
  return String(error).slice(0, 60);
}
