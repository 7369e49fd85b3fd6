import type { IntervalHistogram } from 'node:perf_hooks';
import type { ArrivalSchedule } from './arrivals.js';
import type { FloodOptions } from './flood.js';
import { encodeHistogram, latencyStats } from './latency.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import type { FloodRecorder } from './recorder.js';
import {
  HISTOGRAM_ENCODING,
  SUMMARY_VERSION,
  judge,
  stockFromOrders,
  type FloodSummary,
  type OutcomeSummary,
  type StockTimeline,
} from './summary.js';

// What one slice of a flood measured, turned into its FloodSummary (src/load/flood-slice.ts
// runs the slice): rates, the generator's own limits, outcomes and the lossless histograms
// that merge.ts adds up across threads and parts.

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The event loop delay monitor's resolution (ms). */
export const LOOP_RESOLUTION_MS = 10;
/** The histogram holds whole timer intervals (ns): the delay is what exceeds the interval. */
const loopDelay = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS));

/** What a slice's load and follow phases left behind. */
export interface SliceMeasurements {
  recorder: FloodRecorder;
  /** The open model's schedule (none for the closed model) and this slice's share of it. */
  schedule: ArrivalSchedule | undefined;
  share: number;
  /** How late the schedule started after --start-at. */
  lateMs: number;
  /** performance.now() when the load phase ended. */
  loadEndedAt: number;
  /** The generator's CPU over the load phase. */
  cpuSeconds: number;
  /** The generator's event loop delay over the load phase. */
  loop: IntervalHistogram;
  follow: FloodSummary['follow'];
  confirmHistogram: string | null;
  /** Stock remaining before the run (the preflight's read). */
  initialStock: number | null;
  /** The run was stopped early (a short rate is then no fault of the generator). */
  aborted: boolean;
}

/** The summary of one slice, not yet judged by thresholds and audit (runFlood does that once). */
export function summarizeSlice(options: FloodOptions, m: SliceMeasurements): FloodSummary {
  const { model } = options;
  const { recorder, schedule, share, lateMs, loadEndedAt, cpuSeconds, loop } = m;
  const { follow, confirmHistogram, initialStock, aborted } = m;
  const expectedOf = (seconds: number) => (schedule?.expectedArrivals(seconds) ?? 0) * share;
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
  if (lateMs > options.maxSendLagMs)
    reasons.push(
      `started ${lateMs} ms after --start-at (preparing took longer): every arrival of this part was late for the sale`,
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
  if (targetRate !== null && achieved < targetRate * 0.95 && !aborted)
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
        model.kind === 'open' && model.shape.stages !== undefined ? [...model.shape.stages] : null,
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
    stock: stockTimeline(recorder, initialStock, options.qty),
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
