import type { AuditReport, Check } from '../audit/audit.js';
import type { ArrivalProcess, Spike, Stage } from './arrivals.js';
import type { FollowSummary } from './follow.js';
import type { LatencyStats } from './latency.js';
import { ERROR_CLASSES, OUTCOME_CLASSES, SHED_CLASSES, type OutcomeClass } from './outcomes.js';
import type { SecondReservation, StockSample, TimelineRow } from './recorder.js';
import type { Slice } from './slices.js';
import { evaluateThresholds, type Threshold, type ThresholdResult } from './thresholds.js';

// The versioned result of a flood (`fsale flood --json`). Its JSON Schema is
// src/load/summary.schema.json; a change that removes or renames a field bumps `version`.

export const SUMMARY_VERSION = 1;

export interface LoadSettings {
  model: 'open' | 'closed';
  /** Open model: arrivals per second at full rate. */
  rate: number | null;
  rampSeconds: number;
  spikes: Spike[];
  /** --stages, else null. */
  stages: Stage[] | null;
  arrivals: ArrivalProcess | null;
  /** Closed model: connections, each with one request in flight. */
  connections: number | null;
  durationSeconds: number | null;
  /** Arrivals (open) or requests (closed) when the run is bounded by a count. */
  requests: number | null;
  users: number;
  retryRatio: number;
  doubleClick: boolean;
  timeoutMs: number;
  maxInFlight: number | null;
  seed: number;
  follow: boolean;
  /** The share of the sale this run sent: part K/N is {index: K-1, count: N}; {0, 1} is all. */
  slice: Slice;
  /** Worker threads that sent the load (each a sub-slice of `slice`). */
  threads: number;
  /** --start-at: the wall-clock time the run waited for (ISO), else null. */
  startAt: string | null;
}

/** The name of the histogram encoding: HdrHistogram's compressed V2 format, base64. */
export const HISTOGRAM_ENCODING = 'hdr-v2-compressed-base64';

/**
 * Every histogram behind the summary's figures, lossless, so that summaries of threads and
 * machines merge into the figures of their union (`fsale report merge`). Values are µs.
 */
export interface SummaryHistograms {
  encoding: typeof HISTOGRAM_ENCODING;
  unit: 'us';
  all: string;
  byClass: Record<OutcomeClass, string>;
  sendLag: string;
  /** Click to confirmation (--follow), else null. */
  confirm: string | null;
  /** The latency of each timeline row's answers (null: none answered in it). */
  timeline: (string | null)[];
  /** The same for timelineFine's rows, or null when there is no fine timeline. */
  timelineFine: (string | null)[] | null;
}

export interface StockTimeline {
  /**
   * `stock_stream`: what GET /stock/:id/stream said (with --follow); `orders`: the stock read
   * before the run minus the orders this run was accepted (all a run without --follow knows).
   */
  source: 'stock_stream' | 'orders';
  /** Stock remaining before the run, when read. */
  initial: number | null;
  /** At most one per 100 ms, each a change. */
  samples: StockSample[];
}

/** One summary that `fsale report merge` merged. */
export interface MergedPart {
  slice: Slice;
  startedAt: string;
  finishedAt: string;
  sent: number;
  verdict: Verdict['status'];
}

export interface OutcomeSummary {
  count: number;
  latencyMs: LatencyStats | null;
}

export interface AuditSummary {
  ran: boolean;
  ok: boolean;
  attempts: number;
  error: string | null;
  checks: Check[];
}

export interface FloodSummary {
  version: typeof SUMMARY_VERSION;
  tool: 'fsale flood';
  startedAt: string;
  finishedAt: string;
  target: { url: string; productId: string; qty: number };
  load: LoadSettings;
  rate: {
    /** Mean arrivals/s the schedule asked for (open model), else null. */
    target: number | null;
    /** Arrivals/s actually sent (a double click is one arrival). */
    achieved: number;
    requestsPerSecond: number;
    answeredPerSecond: number;
    /** From the start to the last send, and to the last answer. */
    sendSeconds: number;
    elapsedSeconds: number;
  };
  requests: {
    sent: number;
    first: number;
    retries: number;
    doubleClicks: number;
    answered: number;
    networkErrors: number;
  };
  outcomes: Record<OutcomeClass, OutcomeSummary>;
  /** Every answered request (network errors excluded). */
  latencyMs: LatencyStats | null;
  latencyOrigin: 'intended_send_time' | 'actual_send_time';
  statusCodes: Record<string, number>;
  problems: Record<string, number>;
  networkErrors: Record<string, number>;
  idempotency: {
    replays: number;
    secondReservations: number;
    examples: SecondReservation[];
  };
  orders: { accepted: number };
  sale: {
    firstAcceptedAtMs: number | null;
    soldOutAtMs: number | null;
    timeToSellOutMs: number | null;
    soldOutSource: 'response' | 'stock_stream' | null;
  };
  follow: FollowSummary | null;
  generator: {
    limited: boolean;
    reasons: string[];
    maxSendLagMs: number;
    sendLagMs: LatencyStats | null;
    eventLoopDelayMs: { p50: number; p99: number; max: number } | null;
    maxInFlight: number;
    inFlightCapHits: number;
    /** CPU this process used while sending (user + system, all threads), and per request sent. */
    cpuSeconds: number;
    cpuUsPerRequest: number | null;
  };
  timeline: TimelineRow[];
  /** A run planned under 10 s also has a timeline in 100 ms buckets. */
  timelineFine: { bucketMs: number; rows: TimelineRow[] } | null;
  /** Stock remaining over the run, when known. */
  stock: StockTimeline | null;
  histograms: SummaryHistograms;
  /** The parts a merged summary was made of (`fsale report merge`), else null. */
  parts: MergedPart[] | null;
  audit: AuditSummary | null;
  thresholds: ThresholdResult[];
  verdict: Verdict;
}

export const EXIT = { ok: 0, invariant: 1, unchecked: 2, threshold: 3, inconclusive: 4 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface Verdict {
  /** Only `pass` is ok: an inconclusive run proves nothing about the server either way. */
  ok: boolean;
  status: 'pass' | 'fail' | 'inconclusive';
  exitCode: ExitCode;
  reasons: string[];
}

export function countOf(summary: FloodSummary, classes: readonly OutcomeClass[]): number {
  return classes.reduce((sum, c) => sum + summary.outcomes[c].count, 0);
}

/** The numbers a threshold can name (see thresholds.ts), null when not measured. */
export function floodMetrics(summary: FloodSummary): Record<string, number | null> {
  const sent = summary.requests.sent;
  const errors = countOf(summary, ERROR_CLASSES);
  const shed = countOf(summary, SHED_CLASSES);
  const metrics: Record<string, number | null> = {
    sent,
    errors,
    error_rate: sent > 0 ? errors / sent : null,
    shed,
    shed_rate: sent > 0 ? shed / sent : null,
    orders: summary.orders.accepted,
    replays: summary.idempotency.replays,
    second_reservations: summary.idempotency.secondReservations,
    rate: summary.rate.achieved,
    throughput: summary.rate.answeredPerSecond,
    send_lag_p99: summary.generator.sendLagMs?.p99 ?? null,
    time_to_sell_out: summary.sale.timeToSellOutMs,
    confirm_p50: summary.follow?.timeToConfirmMs?.p50 ?? null,
    confirm_p99: summary.follow?.timeToConfirmMs?.p99 ?? null,
    fulfilled_rate: summary.follow?.fulfilledPerSecond ?? null,
    unsettled: summary.follow?.unsettled ?? null,
  };
  const latency = (stats: LatencyStats | null, suffix: string) => {
    metrics[`p50${suffix}`] = stats?.p50 ?? null;
    metrics[`p90${suffix}`] = stats?.p90 ?? null;
    metrics[`p99${suffix}`] = stats?.p99 ?? null;
    metrics[`p999${suffix}`] = stats?.p999 ?? null;
    metrics[`max${suffix}`] = stats?.max ?? null;
    metrics[`mean${suffix}`] = stats?.mean ?? null;
  };
  latency(summary.latencyMs, '');
  for (const c of OUTCOME_CLASSES) {
    metrics[c] = summary.outcomes[c].count;
    latency(summary.outcomes[c].latencyMs, `:${c}`);
  }
  return metrics;
}

export interface VerdictInput {
  secondReservations: number;
  audit: AuditSummary | null;
  thresholds: readonly ThresholdResult[];
  /** Why the generator could not keep to its schedule (empty: it did). */
  generatorLimits: readonly string[];
}

/**
 * The run's verdict. 1 an invariant is violated, 2 the audit could not run: both are facts
 * about the system whatever the load looked like. 4 inconclusive: the generator itself could
 * not keep to its schedule, so every latency and rate includes its own delay; that outranks a
 * missed threshold (3), which would then be judged on figures that are not the server's, and
 * it is never a pass even when every threshold held.
 */
export function verdict(input: VerdictInput): Verdict {
  const { secondReservations, audit, thresholds, generatorLimits } = input;
  const reasons: string[] = [];
  if (secondReservations > 0)
    reasons.push(`${secondReservations} idempotency key(s) reserved a second order`);
  if (audit?.ran === true && !audit.ok)
    reasons.push(`audit: ${audit.checks.filter((c) => !c.ok).length} invariant check(s) failed`);
  const invariantBroken = reasons.length > 0;
  const unchecked = audit !== null && !audit.ran;
  if (unchecked) reasons.push(`audit could not run: ${audit.error ?? 'unknown error'}`);
  const limited = generatorLimits.length > 0;
  for (const limit of generatorLimits) reasons.push(`generator limited: ${limit}`);
  const missed = thresholds.filter((t) => !t.ok);
  for (const t of missed)
    reasons.push(
      `threshold ${t.expression} missed (actual ${t.actual === null ? 'not measured' : String(t.actual)})`,
    );
  const exitCode: ExitCode = invariantBroken
    ? EXIT.invariant
    : unchecked
      ? EXIT.unchecked
      : limited
        ? EXIT.inconclusive
        : missed.length > 0
          ? EXIT.threshold
          : EXIT.ok;
  const status =
    exitCode === EXIT.ok ? 'pass' : exitCode === EXIT.inconclusive ? 'inconclusive' : 'fail';
  return { ok: exitCode === EXIT.ok, status, exitCode, reasons };
}

export function auditSummary(report: AuditReport, attempts: number): AuditSummary {
  return { ran: true, ok: report.ok, attempts, error: null, checks: report.checks };
}

/** The summary with its thresholds evaluated and its verdict decided, on its own figures. */
export function judge(summary: FloodSummary, thresholds: readonly Threshold[]): FloodSummary {
  const judged = { ...summary };
  judged.thresholds = evaluateThresholds(thresholds, floodMetrics(judged));
  judged.verdict = verdict({
    secondReservations: judged.idempotency.secondReservations,
    audit: judged.audit,
    thresholds: judged.thresholds,
    generatorLimits: judged.generator.reasons,
  });
  return judged;
}

const STOCK_SAMPLE_MS = 100;

/**
 * Stock remaining as a run without the stock stream knows it: the stock before the run minus
 * `qty` per order, at the time each was accepted; one sample per 100 ms at most.
 */
export function stockFromOrders(
  initial: number,
  orderTimes: readonly number[],
  qty: number,
): StockSample[] {
  const samples: StockSample[] = [{ atMs: 0, remaining: initial }];
  const sorted = [...orderTimes].sort((a, b) => a - b);
  let remaining = initial;
  for (const at of sorted) {
    remaining = Math.max(0, remaining - qty);
    const bucket = Math.floor(at / STOCK_SAMPLE_MS) * STOCK_SAMPLE_MS;
    const last = samples.at(-1);
    if (last !== undefined && last.atMs === bucket) last.remaining = remaining;
    else samples.push({ atMs: bucket, remaining });
  }
  return samples;
}
