import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ArrivalSchedule, seededRandom } from './arrivals.js';
import type { FloodOptions, FloodPhase, FloodProgress } from './flood.js';
import { startFollower } from './follow-thread.js';
import { connectOpenModel, connectionsToWarm } from './open-model.js';
import { PurchasePlan } from './plan.js';
import { FINE_TIMELINE_BELOW_SECONDS, FloodRecorder } from './recorder.js';
import { LOOP_RESOLUTION_MS, summarizeSlice } from './slice-summary.js';
import type { FloodSummary } from './summary.js';

// The engine of one slice of a flood (src/load/flood.ts runs one, or one per thread through
// flood-thread.ts): its buyers prepared before the clock starts, the load sent on the open or
// the closed model, progress each second, --follow settled; slice-summary.ts summarizes it.

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
    return summarizeSlice(options, {
      recorder,
      schedule,
      share,
      lateMs: start.lateMs,
      loadEndedAt,
      cpuSeconds,
      loop,
      follow,
      confirmHistogram,
      initialStock: context.initialStock,
      aborted: signal.aborted,
    });
  } finally {
    clearInterval(progress);
    loop.disable();
    follower?.close();
  }
}
