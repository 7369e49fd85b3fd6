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
import type { StockTimeline } from './summary.js';

// The merge rules of what slices of one sale saw over time (src/load/merge.ts merges the
// rest): timeline rows added bucket by bucket with latency from the merged histograms, stock
// as every part saw it, followed orders added up; and the arithmetic they share.

export const sum = (values: readonly number[]) => values.reduce((total, v) => total + v, 0);
export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

export function addCounts(maps: readonly Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const map of maps) for (const [k, v] of Object.entries(map)) total[k] = (total[k] ?? 0) + v;
  return total;
}

export function nullableMin(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.min(...known);
}

export function nullableMax(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.max(...known);
}

/** Merged latency of one family of histograms (one per part), exact min and max. */
export function stats(
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

export const encodeMerged = (encoded: readonly (string | null)[]) =>
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

export function mergeFollow(
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
