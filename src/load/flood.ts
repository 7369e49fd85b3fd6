import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AuditReport } from '../audit/audit.js';
import { describe as describeError, UsageError } from '../domain/errors.js';
import { ArrivalSchedule, seededRandom, type ArrivalProcess, type RateShape } from './arrivals.js';
import { startFollower } from './follow-thread.js';
import { encodeHistogram, latencyStats } from './latency.js';
import { connectOpenModel, connectionsToWarm } from './open-model.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import { PurchasePlan } from './plan.js';
import type { Slice } from './slices.js';
import { FINE_TIMELINE_BELOW_SECONDS, FloodRecorder } from './recorder.js';
import {
  HISTOGRAM_ENCODING,
  SUMMARY_VERSION,
  auditSummary,
  judge,
  stockFromOrders,
  type AuditSummary,
  type FloodSummary,
  type OutcomeSummary,
  type StockTimeline,
} from './summary.js';
import type { Threshold } from './thresholds.js';

export type LoadModel =
  | {
      kind: 'open';
      shape: RateShape;
      arrivals: ArrivalProcess;
      durationSeconds: number | undefined;
      /** Arrivals, when the run is bounded by a count. */
      requests: number | undefined;
    }
  | {
      kind: 'closed';
      connections: number;
      durationSeconds: number | undefined;
      requests: number | undefined;
    };

export interface FloodOptions {
  url: URL;
  productId: string;
  qty: number;
  model: LoadModel;
  users: number;
  userPrefix: string;
  keyPrefix: string;
  jwtSecret: string;
  retryRatio: number;
  doubleClick: boolean;
  seed: number;
  timeoutMs: number;
  maxInFlight: number;
  /** Open model: requests written on one connection before its answer (1: no pipelining). */
  pipelining: number;
  /** The share of the sale's buyers this process runs (--part); WHOLE by default. */
  slice: Slice;
  /** Open model: worker threads, each sending a sub-slice of `slice` (default 1: this thread). */
  threads?: number | undefined;
  /** --start-at: epoch ms at which the schedule's time 0 falls (default: once prepared). */
  startAt?: number | undefined;
  /** The generator is flagged when its send lag or event-loop delay p99 exceeds this. */
  maxSendLagMs: number;
  follow:
    | { maxStreams: number; pollIntervalMs: number; pollConcurrency: number; timeoutMs: number }
    | undefined;
  thresholds: readonly Threshold[];
  /** Runs the invariant audit (undefined: --no-audit). */
  audit: (() => Promise<AuditReport>) | undefined;
  auditAttempts: number;
  auditRetryDelayMs: number;
  /** Check the API answers and knows the product before sending load. */
  preflight: boolean;
}

export type FloodPhase = 'load' | 'follow' | 'audit';

export interface FloodProgress {
  phase: FloodPhase;
  elapsedSeconds: number;
  targetRate: number | null;
  /** Requests sent and answered in the last second. */
  sentLastSecond: number;
  p99LastSecond: number | null;
  sent: number;
  answered: number;
  inFlight: number;
  counts: Record<OutcomeClass, number>;
  orders: number;
  following: number | null;
}

export interface FloodHooks {
  onProgress?: ((progress: FloodProgress) => void) | undefined;
}

/**
 * Checks the API is up and the product exists (a typo should not become 10,000 errors), and
 * reads the stock remaining before the run (null when the page does not say).
 */
async function preflight(url: URL, productId: string): Promise<number | null> {
  const productUrl = new URL(`/products/${encodeURIComponent(productId)}`, url);
  let status: number;
  let body: string;
  try {
    const response = await fetch(productUrl, { signal: AbortSignal.timeout(5_000) });
    status = response.status;
    body = await response.text();
  } catch (error) {
    // fetch wraps the socket error (ECONNREFUSED...) in a TypeError('fetch failed').
    const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
    throw new UsageError(`cannot reach the API at ${url.origin}: ${describeError(cause)}`);
  }
  if (status === 404) throw new UsageError(`unknown product ${productId} at ${url.origin}`);
  try {
    const remaining = (JSON.parse(body) as { remaining?: unknown }).remaining;
    return typeof remaining === 'number' && Number.isFinite(remaining) ? remaining : null;
  } catch {
    return null;
  }
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

const LOOP_RESOLUTION_MS = 10;
/** The histogram holds whole timer intervals (ns): the delay is what exceeds the interval. */
const loopDelay = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS));

/** Tokens are signed at most this long before --start-at (serve refuses tokens valid > 24 h). */
const PREPARE_LEAD_MS = 5 * 60_000;

export async function runFlood(
  options: FloodOptions,
  hooks: FloodHooks = {},
  signal: AbortSignal = new AbortController().signal,
): Promise<FloodSummary> {
  const initialStock = options.preflight ? await preflight(options.url, options.productId) : null;
  if (options.startAt !== undefined)
    await sleepUntilWall(options.startAt - PREPARE_LEAD_MS, signal);
  const threads = options.threads ?? 1;
  const load =
    threads > 1 && options.model.kind === 'open'
      ? await (
          await import('./flood-thread.js')
        ).runInThreads(options, threads, initialStock, hooks, signal)
      : await runSlice(options, {
          initialStock,
          onProgress: hooks.onProgress,
          signal,
          start: (prepared) => startAtWall(options.startAt, prepared),
        });
  let audit: AuditSummary | null = null;
  if (options.audit !== undefined) {
    hooks.onProgress?.({ ...idleProgress(load), phase: 'audit' });
    audit = await auditWithRetries(options.audit, options.auditAttempts, options.auditRetryDelayMs);
  }
  return judge({ ...load, audit }, options.thresholds);
}

/** The progress line of a phase with nothing moving (the audit). */
function idleProgress(summary: FloodSummary): FloodProgress {
  return {
    phase: 'audit',
    elapsedSeconds: summary.rate.elapsedSeconds,
    targetRate: null,
    sentLastSecond: 0,
    p99LastSecond: null,
    sent: summary.requests.sent,
    answered: summary.requests.answered,
    inFlight: 0,
    counts: Object.fromEntries(
      OUTCOME_CLASSES.map((c) => [c, summary.outcomes[c].count]),
    ) as Record<OutcomeClass, number>,
    orders: summary.orders.accepted,
    following: null,
  };
}

async function sleepUntilWall(wall: number, signal: AbortSignal): Promise<void> {
  // setTimeout takes at most 2^31-1 ms; --start-at is at most a day ahead.
  while (!signal.aborted && Date.now() < wall) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(wall - Date.now(), 60_000));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * The schedule's time 0 as performance.now(): --start-at, or at once. A part prepared after
 * its --start-at starts late, and says so in its reasons (its arrivals are late for the sale).
 */
export async function startAtWall(
  startAt: number | undefined,
  prepared: number,
): Promise<{ at: number; lateMs: number }> {
  if (startAt === undefined) return { at: performance.now(), lateMs: 0 };
  const at = startAt - performance.timeOrigin;
  const wait = at - prepared;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.floor(wait)));
  const now = performance.now();
  return { at: Math.max(at, now - 1), lateMs: Math.max(0, Math.round(now - at)) };
}

export interface SliceContext {
  /** Stock remaining before the run (the preflight's read), for the stock timeline. */
  initialStock: number | null;
  onProgress: ((progress: FloodProgress) => void) | undefined;
  signal: AbortSignal;
  /**
   * Called once everything is prepared (tokens signed, connections warm) with
   * performance.now(); resolves with the performance.now() at which the schedule starts, and
   * how late that is after the intended start (a part that missed its --start-at).
   */
  start: (preparedAt: number) => Promise<{ at: number; lateMs: number }>;
  /** Called when the load phase ends (before --follow settles). */
  onLoaded?: (() => void) | undefined;
}

/**
 * One thread's share of a flood (options.slice): prepares it, waits for its start, sends it,
 * follows it, and summarizes it with lossless histograms. No audit and no thresholds here:
 * runFlood judges the whole run once every slice is in.
 */
export async function runSlice(
  options: FloodOptions,
  context: SliceContext,
): Promise<FloodSummary> {
  const { model } = options;
  const { signal } = context;
  const random = seededRandom(options.seed);
  const schedule =
    model.kind === 'open' ? new ArrivalSchedule(model.shape, model.durationSeconds) : undefined;
  const expectedArrivals =
    model.requests ??
    (schedule !== undefined && model.durationSeconds !== undefined
      ? Math.ceil(schedule.expectedArrivals(model.durationSeconds))
      : options.users);
  const tokenTtlSeconds =
    3600 + Math.ceil((model.durationSeconds ?? 3600) + (options.follow?.timeoutMs ?? 0) / 1000);
  const plan = new PurchasePlan({
    jwtSecret: options.jwtSecret,
    users: options.users,
    userPrefix: options.userPrefix,
    keyPrefix: options.keyPrefix,
    tokenTtlSeconds,
    productId: options.productId,
    qty: options.qty,
    retryRatio: options.retryRatio,
    random,
    // The open model signs the tokens of the buyers it will use in prepare(); the closed model
    // signs the first ones now and the rest on first use.
    premint: model.kind === 'closed' ? Math.min(expectedArrivals, 200_000) : 0,
  });
  // Every arrival of the open model, prepared before the clock starts.
  const prepared =
    model.kind === 'open' && schedule !== undefined
      ? plan.prepare({
          schedule,
          process: model.arrivals,
          limit: model.requests,
          slice: options.slice,
        })
      : undefined;
  // This slice's share of the sale's arrivals: the target it is held to.
  const share =
    prepared === undefined || prepared.wholeCount === 0 ? 1 : prepared.count / prepared.wholeCount;
  const expectedOf = (seconds: number) => (schedule?.expectedArrivals(seconds) ?? 0) * share;

  const target = { url: options.url, timeoutMs: options.timeoutMs };
  const maxConnections = Math.ceil(options.maxInFlight / options.pipelining);
  const openModel =
    prepared === undefined
      ? undefined
      : await connectOpenModel(target, plan.body, {
          arrivals: prepared,
          doubleClick: options.doubleClick,
          maxInFlight: options.maxInFlight,
          pipelining: options.pipelining,
          warmUp:
            prepared.count === 0
              ? undefined
              : {
                  connections: connectionsToWarm(prepared.times, maxConnections),
                  path: `/products/${encodeURIComponent(options.productId)}`,
                },
        });

  const start = await context.start(performance.now());
  const plannedSeconds =
    model.durationSeconds ??
    (prepared === undefined ? undefined : (prepared.times[prepared.count - 1] ?? 0) / 1000);
  const recorder = new FloodRecorder({
    startedAt: start.at,
    fine: plannedSeconds !== undefined && plannedSeconds < FINE_TIMELINE_BELOW_SECONDS,
  });
  const follower =
    options.follow === undefined
      ? undefined
      : startFollower(
          {
            url: options.url,
            productId: options.productId,
            maxStreams: options.follow.maxStreams,
            pollIntervalMs: options.follow.pollIntervalMs,
            pollConcurrency: options.follow.pollConcurrency,
            jwtSecret: options.jwtSecret,
            tokenTtlSeconds,
            userPrefix: options.userPrefix,
          },
          recorder,
        );
  if (follower !== undefined) {
    recorder.onAccepted = (order) => follower.track(order);
    follower.watchStock();
  }

  let phase: FloodPhase = 'load';
  let lastSecondSent = 0;
  const progress = setInterval(() => {
    const elapsed = (performance.now() - recorder.startedAt) / 1000;
    const last = recorder.timeline.rows[Math.floor(elapsed) - 1];
    context.onProgress?.({
      phase,
      elapsedSeconds: elapsed,
      // Arrivals the schedule asked for over the same last second as sentLastSecond.
      targetRate:
        schedule === undefined || phase !== 'load'
          ? null
          : expectedOf(elapsed) - expectedOf(Math.max(0, elapsed - 1)),
      sentLastSecond: recorder.sent - lastSecondSent,
      p99LastSecond: last?.p99 ?? null,
      sent: recorder.sent,
      answered: recorder.answered + recorder.counts.network_error,
      inFlight: recorder.inFlight,
      counts: { ...recorder.counts },
      orders: recorder.orderIds.size,
      following: follower === undefined ? null : follower.unsettled,
    });
    lastSecondSent = recorder.sent;
  }, 1000);
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  // The generator's own CPU over the load phase (every thread of this process): what a request
  // costs the side that sends it, to compare with what it costs the server.
  const cpuAtStart = process.cpuUsage();

  try {
    if (openModel !== undefined) {
      await openModel(recorder, signal);
    } else if (model.kind === 'closed') {
      // Loaded only when used: autocannon and its dependencies take a while to import.
      const { runClosedModel } = await import('./closed-model.js');
      await runClosedModel(
        target,
        plan,
        recorder,
        {
          connections: model.connections,
          durationMs:
            model.durationSeconds === undefined ? undefined : model.durationSeconds * 1000,
          requests: model.requests,
        },
        signal,
      );
    }
    loop.disable();
    recorder.timeline.close();
    recorder.fine?.close();
    const loadEndedAt = performance.now();
    const cpu = process.cpuUsage(cpuAtStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    context.onLoaded?.();

    if (follower !== undefined && options.follow !== undefined) {
      phase = 'follow';
      await follower.settle(options.follow.timeoutMs, signal);
    }
    const follow = follower?.summary() ?? null;
    const confirmHistogram = follower?.confirmHistogram() ?? null;
    follower?.close();

    const begin = recorder.startedAt;
    const since = (at: number | undefined) => (at === undefined ? null : Math.round(at - begin));
    const sendSeconds = Math.max(
      0.001,
      ((recorder.lastSendAt ?? begin) - begin) / 1000,
      model.durationSeconds ?? 0,
    );
    const elapsedSeconds = Math.max(0.001, ((recorder.lastAnswerAt ?? loadEndedAt) - begin) / 1000);
    const arrivalsSent = recorder.sent - recorder.sentByKind.double_click;
    const scheduleSeconds =
      schedule === undefined
        ? undefined
        : (model.durationSeconds ?? schedule.timeOfArrival(Math.max(0, arrivalsSent - 1)) ?? 0);
    const targetRate =
      schedule !== undefined && scheduleSeconds !== undefined && scheduleSeconds > 0
        ? schedule.meanRate(scheduleSeconds) * share
        : null;
    if (schedule !== undefined) {
      for (const timeline of [recorder.timeline, recorder.fine]) {
        if (timeline === undefined) continue;
        const width = timeline.bucketMs / 1000;
        for (const row of timeline.rows)
          row.target = round(expectedOf(row.second + width) - expectedOf(row.second), 1);
      }
    }

    const sendLag = latencyStats(recorder.sendLag);
    const eventLoopDelayMs =
      loop.count > 0
        ? {
            p50: loopDelay(loop.percentile(50)),
            p99: loopDelay(loop.percentile(99)),
            max: loopDelay(loop.max),
          }
        : null;
    const achieved = arrivalsSent / sendSeconds;
    const reasons: string[] = [];
    if (start.lateMs > options.maxSendLagMs)
      reasons.push(
        `started ${start.lateMs} ms after --start-at (preparing took longer): every arrival of this part was late for the sale`,
      );
    if (sendLag !== null && sendLag.p99 > options.maxSendLagMs)
      reasons.push(
        `99% of sends within ${sendLag.p99} ms of their intended time (bound ${options.maxSendLagMs} ms): the generator fell behind its schedule`,
      );
    if (recorder.inFlightCapHits > 0)
      reasons.push(
        `${recorder.inFlightCapHits} arrivals waited because ${options.maxInFlight} requests were already in flight (--max-in-flight)`,
      );
    if (eventLoopDelayMs !== null && eventLoopDelayMs.p99 > options.maxSendLagMs)
      reasons.push(
        `the generator's event loop was delayed ${eventLoopDelayMs.p99} ms at p99 (bound ${options.maxSendLagMs} ms): it was CPU-bound`,
      );
    if (targetRate !== null && achieved < targetRate * 0.95 && !signal.aborted)
      reasons.push(`achieved ${round(achieved)} arrivals/s of the ${round(targetRate)} targeted`);

    const outcomes = Object.fromEntries(
      OUTCOME_CLASSES.map((c) => [
        c,
        { count: recorder.counts[c], latencyMs: latencyStats(recorder.byClass[c]) },
      ]),
    ) as Record<OutcomeClass, OutcomeSummary>;

    const firstAccepted = since(recorder.firstAcceptedAt);
    const soldOut = since(recorder.firstSoldOutAt);
    const summary: FloodSummary = {
      version: SUMMARY_VERSION,
      tool: 'fsale flood',
      startedAt: new Date(recorder.startedWall).toISOString(),
      finishedAt: new Date().toISOString(),
      target: { url: options.url.origin, productId: options.productId, qty: options.qty },
      load: {
        model: model.kind,
        rate: model.kind === 'open' ? model.shape.rate : null,
        rampSeconds: model.kind === 'open' ? model.shape.rampSeconds : 0,
        spikes: model.kind === 'open' ? [...model.shape.spikes] : [],
        stages:
          model.kind === 'open' && model.shape.stages !== undefined
            ? [...model.shape.stages]
            : null,
        arrivals: model.kind === 'open' ? model.arrivals : null,
        connections: model.kind === 'closed' ? model.connections : null,
        durationSeconds: model.durationSeconds ?? null,
        requests: model.requests ?? null,
        users: options.users,
        retryRatio: options.retryRatio,
        doubleClick: options.doubleClick,
        timeoutMs: options.timeoutMs,
        maxInFlight: model.kind === 'open' ? options.maxInFlight : null,
        seed: options.seed,
        follow: options.follow !== undefined,
        slice: { ...options.slice },
        threads: 1,
        startAt: options.startAt === undefined ? null : new Date(options.startAt).toISOString(),
      },
      rate: {
        target: targetRate === null ? null : round(targetRate),
        achieved: round(achieved),
        requestsPerSecond: round(recorder.sent / sendSeconds),
        answeredPerSecond: round(recorder.answered / elapsedSeconds),
        sendSeconds: round(sendSeconds, 3),
        elapsedSeconds: round(elapsedSeconds, 3),
      },
      requests: {
        sent: recorder.sent,
        first: recorder.sentByKind.first,
        retries: recorder.sentByKind.retry,
        doubleClicks: recorder.sentByKind.double_click,
        answered: recorder.answered,
        networkErrors: recorder.counts.network_error,
      },
      outcomes,
      latencyMs: latencyStats(recorder.all),
      latencyOrigin: model.kind === 'open' ? 'intended_send_time' : 'actual_send_time',
      statusCodes: Object.fromEntries([...recorder.statusCodes].map(([k, v]) => [String(k), v])),
      problems: Object.fromEntries(recorder.problems),
      networkErrors: Object.fromEntries(recorder.networkErrors),
      idempotency: {
        replays: recorder.replays,
        secondReservations: recorder.secondReservations,
        examples: recorder.secondReservationExamples,
      },
      orders: { accepted: recorder.orderIds.size },
      sale: {
        firstAcceptedAtMs: firstAccepted,
        soldOutAtMs: soldOut,
        timeToSellOutMs:
          firstAccepted !== null && soldOut !== null ? Math.max(0, soldOut - firstAccepted) : null,
        soldOutSource: recorder.soldOutSource ?? null,
      },
      follow,
      generator: {
        limited: reasons.length > 0,
        reasons,
        maxSendLagMs: options.maxSendLagMs,
        sendLagMs: sendLag,
        eventLoopDelayMs,
        maxInFlight: recorder.maxInFlight,
        inFlightCapHits: recorder.inFlightCapHits,
        cpuSeconds: round(cpuSeconds, 3),
        cpuUsPerRequest: recorder.sent > 0 ? round((cpuSeconds * 1e6) / recorder.sent, 1) : null,
      },
      timeline: recorder.timeline.rows,
      timelineFine:
        recorder.fine === undefined
          ? null
          : { bucketMs: recorder.fine.bucketMs, rows: recorder.fine.rows },
      stock: stockTimeline(recorder, context.initialStock, options.qty),
      histograms: {
        encoding: HISTOGRAM_ENCODING,
        unit: 'us',
        all: encodeHistogram(recorder.all),
        byClass: Object.fromEntries(
          OUTCOME_CLASSES.map((c) => [c, encodeHistogram(recorder.byClass[c])]),
        ) as Record<OutcomeClass, string>,
        sendLag: encodeHistogram(recorder.sendLag),
        confirm: confirmHistogram,
        timeline: recorder.timeline.encoded,
        timelineFine: recorder.fine?.encoded ?? null,
      },
      parts: null,
      audit: null,
      thresholds: [],
      verdict: { ok: true, status: 'pass', exitCode: 0, reasons: [] },
    };
    return judge(summary, []);
  } finally {
    clearInterval(progress);
    loop.disable();
    follower?.close();
  }
}

/**
 * Stock remaining over the run: the stock stream's samples when --follow watched it, else
 * the stock read before the run minus this run's orders, as they were accepted.
 */
function stockTimeline(
  recorder: FloodRecorder,
  initial: number | null,
  qty: number,
): StockTimeline | null {
  if (recorder.stock.length > 0)
    return { source: 'stock_stream', initial, samples: recorder.stock };
  if (initial === null) return null;
  return { source: 'orders', initial, samples: stockFromOrders(initial, recorder.orderTimes, qty) };
}

/**
 * Runs the audit, again after a pause if it fails: its reads of Redis and PostgreSQL are not one
 * snapshot, so a payment settling between them can fail a check for an instant. A violation
 * that is real is still there on the last attempt.
 */
async function auditWithRetries(
  audit: () => Promise<AuditReport>,
  attempts: number,
  delayMs: number,
): Promise<AuditSummary> {
  let report: AuditReport | undefined;
  let attempt = 0;
  try {
    for (attempt = 1; attempt <= attempts; attempt++) {
      report = await audit();
      if (report.ok || attempt === attempts) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  } catch (error) {
    return { ran: false, ok: false, attempts: attempt, error: describeError(error), checks: [] };
  }
  if (report === undefined)
    return { ran: false, ok: false, attempts: 0, error: 'no audit attempt', checks: [] };
  return auditSummary(report, Math.min(attempt, attempts));
}
