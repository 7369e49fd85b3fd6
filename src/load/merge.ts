import type { FollowSummary } from './follow.js';
import {
  encodeHistogram,
  latencyStats,
  mergedStats,
  mergeEncoded,
  type LatencyStats,
} from './latency.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import type { StockSample, TimelineRow } from './recorder.js';
import {
  HISTOGRAM_ENCODING,
  SUMMARY_VERSION,
  judge,
  type AuditSummary,
  type FloodSummary,
  type LoadSettings,
  type OutcomeSummary,
  type StockTimeline,
} from './summary.js';
import type { Threshold } from './thresholds.js';

// Summaries of slices of one sale (the threads of one flood, or the parts of a sale run on
// many machines) merged into the summary of the whole. Counts add; latencies come from the
// merged HDR histograms (the histogram of the union, so percentiles are as exact as one run's);
// timelines are aligned on the wall clock of each slice's start; the generator is as limited
// as its most limited slice. The audit, thresholds and verdict are the caller's: judge() the
// merged summary.

export class MergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeError';
  }
}

/** A summary to merge, and what to call it in an error (a file name, "thread 2"). */
export interface NamedSummary {
  name: string;
  summary: FloodSummary;
}

/** The load settings that must be the same in every part of one sale. */
const SAME_SALE_KEYS = [
  'model',
  'rate',
  'rampSeconds',
  'spikes',
  'stages',
  'arrivals',
  'connections',
  'durationSeconds',
  'requests',
  'users',
  'retryRatio',
  'doubleClick',
  'seed',
  'follow',
] as const satisfies readonly (keyof LoadSettings)[];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A part's JSON (`fsale flood --part K/N --json`) as a summary, or a MergeError saying why it
 * cannot be merged. Only what merging relies on is checked here; the schema says the rest.
 */
export function asPart(name: string, value: unknown): FloodSummary {
  if (!isRecord(value) || value.tool !== 'fsale flood')
    throw new MergeError(`${name} is not the --json summary of fsale flood`);
  if (value.version !== SUMMARY_VERSION)
    throw new MergeError(
      `${name} is a version ${JSON.stringify(value.version)} summary; this fsale merges version ${SUMMARY_VERSION}`,
    );
  const histograms = value.histograms;
  if (!isRecord(histograms) || histograms.encoding !== HISTOGRAM_ENCODING)
    throw new MergeError(
      `${name} has no lossless histograms (written by an older fsale flood): rerun it with this one`,
    );
  const load = value.load;
  const slice = isRecord(load) ? load.slice : undefined;
  if (!isRecord(slice) || typeof slice.index !== 'number' || typeof slice.count !== 'number')
    throw new MergeError(`${name} does not say which part of the sale it is (load.slice)`);
  return value as unknown as FloodSummary;
}

/**
 * Refuses summaries that are not the parts of one sale: written without histograms, of
 * another product or shape, of another split, overlapping or missing a part.
 */
export function checkParts(parts: readonly NamedSummary[]): void {
  const first = parts[0];
  if (first === undefined) throw new MergeError('nothing to merge: give the parts’ JSON files');
  const a = first.summary;
  for (const { name, summary: b } of parts.slice(1)) {
    if (b.target.productId !== a.target.productId || b.target.qty !== a.target.qty)
      throw new MergeError(
        `${first.name} and ${name} are not one sale: product ${a.target.productId} x${a.target.qty} vs ${b.target.productId} x${b.target.qty}`,
      );
    for (const key of SAME_SALE_KEYS) {
      if (JSON.stringify(a.load[key]) !== JSON.stringify(b.load[key]))
        throw new MergeError(
          `${first.name} and ${name} are not one sale: load.${key} is ${JSON.stringify(a.load[key])} vs ${JSON.stringify(b.load[key])}`,
        );
    }
    if (b.load.slice.count !== a.load.slice.count)
      throw new MergeError(
        `${first.name} and ${name} split the sale differently: parts of ${a.load.slice.count} vs ${b.load.slice.count}`,
      );
  }
  const seen = new Map<number, string>();
  for (const { name, summary } of parts) {
    const index = summary.load.slice.index;
    const other = seen.get(index);
    if (other !== undefined)
      throw new MergeError(
        `${other} and ${name} are the same part (${index + 1}/${summary.load.slice.count}): they overlap`,
      );
    seen.set(index, name);
  }
  const count = a.load.slice.count;
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0)
    throw new MergeError(
      `part${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i + 1}/${count}`).join(', ')} missing: merge every part of the sale`,
    );
}

const sum = (values: readonly number[]) => values.reduce((total, v) => total + v, 0);
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

function addCounts(maps: readonly Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const map of maps) for (const [k, v] of Object.entries(map)) total[k] = (total[k] ?? 0) + v;
  return total;
}

function nullableMin(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.min(...known);
}

function nullableMax(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.max(...known);
}

/** Merged latency of one family of histograms (one per part), exact min and max. */
function stats(
  encoded: readonly (string | null)[],
  exact: readonly (LatencyStats | null)[],
): LatencyStats | null {
  return mergedStats(mergeEncoded(encoded), exact);
}

/**
 * Timeline rows of parts that started `shifts[i]` buckets after the first, added bucket by
 * bucket; each row's latency from its merged histograms.
 */
export function mergeTimelines(
  timelines: readonly { rows: readonly TimelineRow[]; encoded: readonly (string | null)[] }[],
  shifts: readonly number[],
  bucketMs: number,
): { rows: TimelineRow[]; encoded: (string | null)[] } {
  const length = Math.max(0, ...timelines.map((t, i) => t.rows.length + (shifts[i] ?? 0)));
  const rows: TimelineRow[] = [];
  const encoded: (string | null)[] = [];
  for (let b = 0; b < length; b++) {
    const here = timelines.flatMap((t, i) => {
      const row = t.rows[b - (shifts[i] ?? 0)];
      return row === undefined ? [] : [{ row, histogram: t.encoded[b - (shifts[i] ?? 0)] ?? null }];
    });
    const outcomes = Object.fromEntries(
      OUTCOME_CLASSES.map((c) => [c, sum(here.map((h) => h.row.outcomes[c]))]),
    ) as Record<OutcomeClass, number>;
    const targets = here.map((h) => h.row.target);
    const histograms = here.map((h) => h.histogram).filter((h): h is string => h !== null);
    const merged = histograms.length === 0 ? null : mergeEncoded(histograms);
    const latency = merged === null ? null : latencyStats(merged);
    rows.push({
      second: Math.round(b * bucketMs) / 1000,
      target: targets.every((t) => t === null) ? null : round(sum(targets.map((t) => t ?? 0)), 1),
      sent: sum(here.map((h) => h.row.sent)),
      answered: sum(here.map((h) => h.row.answered)),
      outcomes,
      p50: latency?.p50 ?? null,
      p99: latency?.p99 ?? null,
      // A row's max is exact in each part; the merged buckets only know its bucket.
      max: latency === null ? null : nullableMax(here.map((h) => h.row.max)),
      confirmed: sum(here.map((h) => h.row.confirmed)),
      sendLagMax: Math.max(0, ...here.map((h) => h.row.sendLagMax)),
      // Parts' peaks need not coincide within the bucket: their sum is an upper bound.
      inFlightMax: sum(here.map((h) => h.row.inFlightMax)),
    });
    encoded.push(
      merged === null
        ? null
        : histograms.length === 1
          ? (histograms[0] ?? null)
          : encodeHistogram(merged),
    );
  }
  return { rows, encoded };
}

const encodeMerged = (encoded: readonly (string | null)[]) =>
  encodeHistogram(mergeEncoded(encoded));

/**
 * Stock over time as the parts saw it. From the stock stream, every part watched the same
 * stream: the union of their samples, the latest value per 100 ms. From the orders, each
 * part only knows its own: the stock read before the run minus every part's orders so far.
 */
export function mergeStock(
  stocks: readonly (StockTimeline | null)[],
  shiftsMs: readonly number[],
): StockTimeline | null {
  const known = stocks.flatMap((s, i) => (s === null ? [] : [{ s, shift: shiftsMs[i] ?? 0 }]));
  if (known.length === 0) return null;
  const initial = nullableMax(known.map((k) => k.s.initial));
  const streams = known.filter((k) => k.s.source === 'stock_stream');
  if (streams.length > 0) {
    const samples = streams
      .flatMap((k) => k.s.samples.map((x) => ({ atMs: x.atMs + k.shift, remaining: x.remaining })))
      .sort((x, y) => x.atMs - y.atMs || y.remaining - x.remaining);
    const merged: StockSample[] = [];
    for (const sample of samples) {
      const last = merged.at(-1);
      if (last !== undefined && Math.floor(last.atMs / 100) === Math.floor(sample.atMs / 100))
        last.remaining = sample.remaining;
      else merged.push({ ...sample });
    }
    return { source: 'stock_stream', initial, samples: merged };
  }
  if (initial === null) return null;
  // Each part's decrements, replayed together in time order.
  const events = known
    .flatMap((k) => {
      const base = k.s.initial ?? initial;
      let previous = base;
      return k.s.samples.map((x) => {
        const taken = previous - x.remaining;
        previous = x.remaining;
        return { atMs: x.atMs + k.shift, taken };
      });
    })
    .sort((x, y) => x.atMs - y.atMs);
  const samples: StockSample[] = [];
  let remaining = initial;
  for (const event of events) {
    remaining = Math.max(0, remaining - event.taken);
    const bucket = Math.floor(event.atMs / 100) * 100;
    const last = samples.at(-1);
    if (last !== undefined && last.atMs === bucket) last.remaining = remaining;
    else samples.push({ atMs: bucket, remaining });
  }
  return { source: 'orders', initial, samples };
}

function mergeFollow(
  follows: readonly (FollowSummary | null)[],
  confirm: readonly (string | null)[],
  shiftsMs: readonly number[],
  firstAcceptedAtMs: number | null,
): FollowSummary | null {
  const known = follows.flatMap((f, i) => (f === null ? [] : [{ f, shift: shiftsMs[i] ?? 0 }]));
  if (known.length === 0) return null;
  const total = (pick: (f: FollowSummary) => number) => sum(known.map((k) => pick(k.f)));
  const paid = total((f) => f.paid);
  const lastConfirmedAtMs = nullableMax(
    known.map((k) => (k.f.lastConfirmedAtMs === null ? null : k.f.lastConfirmedAtMs + k.shift)),
  );
  const span =
    firstAcceptedAtMs !== null && lastConfirmedAtMs !== null
      ? (lastConfirmedAtMs - firstAcceptedAtMs) / 1000
      : 0;
  return {
    followed: total((f) => f.followed),
    viaStream: total((f) => f.viaStream),
    viaPolling: total((f) => f.viaPolling),
    streamFallbacks: total((f) => f.streamFallbacks),
    streamMisses: total((f) => f.streamMisses),
    pollRequests: total((f) => f.pollRequests),
    pollErrors: total((f) => f.pollErrors),
    paid,
    paymentFailed: total((f) => f.paymentFailed),
    needsReconciliation: total((f) => f.needsReconciliation),
    unsettled: total((f) => f.unsettled),
    byStatus: addCounts(known.map((k) => k.f.byStatus)),
    timeToConfirmMs: stats(
      confirm,
      known.map((k) => k.f.timeToConfirmMs),
    ),
    fulfilledPerSecond: span > 0 ? round(paid / span) : null,
    lastConfirmedAtMs,
    complete: known.every((k) => k.f.complete),
  };
}

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
