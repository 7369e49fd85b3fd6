import {
  addCounts,
  encodeMerged,
  mergeFollow,
  mergeStock,
  mergeTimelines,
  nullableMin,
  round,
  stats,
  sum,
} from './merge-series.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import { checkParts, MergeError, type NamedSummary } from './part-checks.js';
import {
  HISTOGRAM_ENCODING,
  SUMMARY_VERSION,
  judge,
  type AuditSummary,
  type FloodSummary,
  type OutcomeSummary,
} from './summary.js';
import type { Threshold } from './thresholds.js';

// Summaries of slices of one sale (the threads of one flood, or the parts of a sale run on
// many machines) merged into the summary of the whole. Counts add; latencies come from the
// merged HDR histograms (the histogram of the union, so percentiles are as exact as one run's);
// timelines are aligned on the wall clock of each slice's start; the generator is as limited
// as its most limited slice. The audit, thresholds and verdict are the caller's: judge() the
// merged summary.

/**
 * The summary of the union of `parts` (checked with checkParts, or the threads of one run).
 * `label` names a part in the generator's reasons ("part 2/3", "thread 1/2").
 */
export function mergeSummaries(
  parts: readonly FloodSummary[],
  label: (summary: FloodSummary, i: number) => string,
): FloodSummary {
  const first = parts[0];
  if (first === undefined) throw new MergeError('nothing to merge');
  if (parts.length === 1) return first;
  const starts = parts.map((p) => Date.parse(p.startedAt));
  const origin = Math.min(...starts);
  const shiftsMs = starts.map((s) => s - origin);
  const finishedAt = new Date(Math.max(...parts.map((p) => Date.parse(p.finishedAt))));

  const outcomes = Object.fromEntries(
    OUTCOME_CLASSES.map((c): [OutcomeClass, OutcomeSummary] => [
      c,
      {
        count: sum(parts.map((p) => p.outcomes[c].count)),
        latencyMs: stats(
          parts.map((p) => p.histograms.byClass[c]),
          parts.map((p) => p.outcomes[c].latencyMs),
        ),
      },
    ]),
  ) as Record<OutcomeClass, OutcomeSummary>;

  const sent = sum(parts.map((p) => p.requests.sent));
  const doubleClicks = sum(parts.map((p) => p.requests.doubleClicks));
  const answered = sum(parts.map((p) => p.requests.answered));
  const sendSeconds = Math.max(
    ...parts.map((p, i) => (shiftsMs[i] ?? 0) / 1000 + p.rate.sendSeconds),
  );
  const elapsedSeconds = Math.max(
    ...parts.map((p, i) => (shiftsMs[i] ?? 0) / 1000 + p.rate.elapsedSeconds),
  );
  const targets = parts.map((p) => p.rate.target);
  const cpuSeconds = sum(parts.map((p) => p.generator.cpuSeconds));

  const shifted = (at: number | null, i: number) => (at === null ? null : at + (shiftsMs[i] ?? 0));
  const firstAcceptedAtMs = nullableMin(parts.map((p, i) => shifted(p.sale.firstAcceptedAtMs, i)));
  // A sign of sold out before the first 202 of the sale is not a sell-out it saw.
  const soldOuts = parts
    .map((p, i) => ({ at: shifted(p.sale.soldOutAtMs, i), source: p.sale.soldOutSource }))
    .filter(
      (x): x is { at: number; source: 'response' | 'stock_stream' | null } =>
        x.at !== null && (firstAcceptedAtMs === null || x.at >= firstAcceptedAtMs),
    )
    .sort((x, y) => x.at - y.at);
  const soldOut = soldOuts[0];

  const second = mergeTimelines(
    parts.map((p) => ({ rows: p.timeline, encoded: p.histograms.timeline })),
    shiftsMs.map((s) => Math.round(s / 1000)),
    1000,
  );
  const fineParts = parts.map((p) =>
    p.timelineFine === null || p.histograms.timelineFine === null
      ? null
      : {
          rows: p.timelineFine.rows,
          encoded: p.histograms.timelineFine,
          bucketMs: p.timelineFine.bucketMs,
        },
  );
  const fineBucket = fineParts[0]?.bucketMs;
  const fine =
    fineBucket !== undefined && fineParts.every((f) => f !== null && f.bucketMs === fineBucket)
      ? mergeTimelines(
          fineParts.map((f) => ({ rows: f?.rows ?? [], encoded: f?.encoded ?? [] })),
          shiftsMs.map((s) => Math.round(s / fineBucket)),
          fineBucket,
        )
      : null;

  const reasons = parts.flatMap((p, i) => p.generator.reasons.map((r) => `${label(p, i)}: ${r}`));
  const loops = parts.map((p) => p.generator.eventLoopDelayMs).filter((l) => l !== null);
  const confirm = parts.map((p) => p.histograms.confirm);

  return {
    version: SUMMARY_VERSION,
    tool: 'fsale flood',
    startedAt: new Date(origin).toISOString(),
    finishedAt: finishedAt.toISOString(),
    target: first.target,
    load: {
      ...first.load,
      maxInFlight:
        first.load.maxInFlight === null ? null : sum(parts.map((p) => p.load.maxInFlight ?? 0)),
      slice: { index: 0, count: 1 },
      threads: sum(parts.map((p) => p.load.threads)),
    },
    rate: {
      target: targets.some((t) => t === null) ? null : round(sum(targets.map((t) => t ?? 0))),
      achieved: round((sent - doubleClicks) / sendSeconds),
      requestsPerSecond: round(sent / sendSeconds),
      answeredPerSecond: round(answered / elapsedSeconds),
      sendSeconds: round(sendSeconds, 3),
      elapsedSeconds: round(elapsedSeconds, 3),
    },
    requests: {
      sent,
      first: sum(parts.map((p) => p.requests.first)),
      retries: sum(parts.map((p) => p.requests.retries)),
      doubleClicks,
      answered,
      networkErrors: sum(parts.map((p) => p.requests.networkErrors)),
    },
    outcomes,
    latencyMs: stats(
      parts.map((p) => p.histograms.all),
      parts.map((p) => p.latencyMs),
    ),
    latencyOrigin: first.latencyOrigin,
    statusCodes: addCounts(parts.map((p) => p.statusCodes)),
    problems: addCounts(parts.map((p) => p.problems)),
    networkErrors: addCounts(parts.map((p) => p.networkErrors)),
    idempotency: {
      replays: sum(parts.map((p) => p.idempotency.replays)),
      secondReservations: sum(parts.map((p) => p.idempotency.secondReservations)),
      examples: parts.flatMap((p) => p.idempotency.examples).slice(0, 10),
    },
    // Parts never share a buyer, so never a key, so never an order id: distinct orders add.
    orders: { accepted: sum(parts.map((p) => p.orders.accepted)) },
    sale: {
      firstAcceptedAtMs,
      soldOutAtMs: soldOut?.at ?? null,
      timeToSellOutMs:
        firstAcceptedAtMs !== null && soldOut !== undefined
          ? Math.max(0, soldOut.at - firstAcceptedAtMs)
          : null,
      soldOutSource: soldOut?.source ?? null,
    },
    follow: mergeFollow(
      parts.map((p) => p.follow),
      confirm,
      shiftsMs,
      firstAcceptedAtMs,
    ),
    generator: {
      limited: reasons.length > 0,
      reasons,
      maxSendLagMs: first.generator.maxSendLagMs,
      sendLagMs: stats(
        parts.map((p) => p.histograms.sendLag),
        parts.map((p) => p.generator.sendLagMs),
      ),
      // The worst slice's event loop: the one that limited the run, if any did.
      eventLoopDelayMs:
        loops.length === 0
          ? null
          : {
              p50: Math.max(...loops.map((l) => l.p50)),
              p99: Math.max(...loops.map((l) => l.p99)),
              max: Math.max(...loops.map((l) => l.max)),
            },
      maxInFlight: sum(parts.map((p) => p.generator.maxInFlight)),
      inFlightCapHits: sum(parts.map((p) => p.generator.inFlightCapHits)),
      cpuSeconds: round(cpuSeconds, 3),
      cpuUsPerRequest: sent > 0 ? round((cpuSeconds * 1e6) / sent, 1) : null,
    },
    timeline: second.rows,
    timelineFine:
      fine === null || fineBucket === undefined ? null : { bucketMs: fineBucket, rows: fine.rows },
    stock: mergeStock(
      parts.map((p) => p.stock),
      shiftsMs,
    ),
    histograms: {
      encoding: HISTOGRAM_ENCODING,
      unit: 'us',
      all: encodeMerged(parts.map((p) => p.histograms.all)),
      byClass: Object.fromEntries(
        OUTCOME_CLASSES.map((c) => [c, encodeMerged(parts.map((p) => p.histograms.byClass[c]))]),
      ) as Record<OutcomeClass, string>,
      sendLag: encodeMerged(parts.map((p) => p.histograms.sendLag)),
      confirm: confirm.every((c) => c === null) ? null : encodeMerged(confirm),
      timeline: second.encoded,
      timelineFine: fine?.encoded ?? null,
    },
    parts: null,
    audit: null,
    thresholds: [],
    verdict: { ok: true, status: 'pass', exitCode: 0, reasons: [] },
  };
}

/**
 * The audit of a merged sale: a part's audit that failed or could not run stands for the
 * whole (a violation seen once is a violation); else the audit of the part that finished
 * last, the one that saw the most of the sale's orders settled.
 */
export function mergeAudits(parts: readonly FloodSummary[]): AuditSummary | null {
  const audits = parts.filter((p) => p.audit !== null);
  const failed = audits.find((p) => p.audit?.ran === true && !p.audit.ok);
  if (failed !== undefined) return failed.audit;
  const unchecked = audits.find((p) => p.audit?.ran === false);
  if (unchecked !== undefined) return unchecked.audit;
  const last = [...audits].sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt))[0];
  return last?.audit ?? null;
}

/**
 * `fsale report merge`: the parts of one sale (checked) as one summary, with one verdict on
 * the merged figures and `thresholds`.
 */
export function mergeParts(
  parts: readonly NamedSummary[],
  thresholds: readonly Threshold[],
): FloodSummary {
  checkParts(parts);
  const sorted = [...parts].sort((a, b) => a.summary.load.slice.index - b.summary.load.slice.index);
  const summaries = sorted.map((p) => p.summary);
  const merged = mergeSummaries(
    summaries,
    (s) => `part ${s.load.slice.index + 1}/${s.load.slice.count}`,
  );
  return judge(
    {
      ...merged,
      load: { ...merged.load, slice: { index: 0, count: 1 } },
      parts: summaries.map((s) => ({
        slice: s.load.slice,
        startedAt: s.startedAt,
        finishedAt: s.finishedAt,
        sent: s.requests.sent,
        verdict: s.verdict.status,
      })),
      audit: mergeAudits(summaries),
    },
    thresholds,
  );
}
