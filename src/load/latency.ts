import * as hdr from 'hdr-histogram-js';

// Latencies go into HDR histograms in microseconds (3 significant digits: a 1.234 s value is
// kept to the millisecond, a 1.234 ms value to the microsecond) and are reported in ms.

export interface LatencyStats {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
}

/** Records a latency in ms (fractions kept to the microsecond; at least 1 µs). */
export function recordMs(histogram: Histogram, ms: number): void {
  histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
}

const round = (us: number) => Math.round(us) / 1000;

/** The statistics of a histogram in ms, or null when nothing was recorded. */
export function latencyStats(histogram: Histogram): LatencyStats | null {
  if (histogram.totalCount === 0) return null;
  return {
    count: histogram.totalCount,
    min: round(histogram.minNonZeroValue),
    mean: round(histogram.mean),
    p50: round(histogram.getValueAtPercentile(50)),
    p90: round(histogram.getValueAtPercentile(90)),
    p99: round(histogram.getValueAtPercentile(99)),
    p999: round(histogram.getValueAtPercentile(99.9)),
    max: round(histogram.maxValue),
  };
}

/** A human-readable duration for tables: 812 µs, 12.3 ms, 1.52 s. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// Histograms cross threads and machines as HdrHistogram's own compressed V2 encoding in
// base64 (what HdrHistogram's Java, Go and C libraries read too): every bucket count is kept,
// so a merged histogram is the histogram of the union, not an average of percentiles.

/** One histogram as text, lossless (empty histograms too). */
export function encodeHistogram(histogram: Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

/** Adds every encoded histogram into one new histogram (null entries are skipped). */
export function mergeEncoded(encoded: readonly (string | null | undefined)[]): Histogram {
  const merged = newHistogram();
  for (const text of encoded) {
    if (text === null || text === undefined) continue;
    const part = hdr.decodeFromCompressedBase64(text);
    if (part.totalCount > 0) merged.add(part);
  }
  return merged;
}

/**
 * The statistics of merged parts. Percentiles and the mean come from the merged buckets;
 * min and max from the parts' exact figures (a decoded histogram only knows a value's bucket).
 */
export function mergedStats(
  histogram: Histogram,
  parts: readonly (LatencyStats | null)[],
): LatencyStats | null {
  const stats = latencyStats(histogram);
  if (stats === null) return null;
  const known = parts.filter((p): p is LatencyStats => p !== null);
  if (known.length === 0) return stats;
  return {
    ...stats,
    min: Math.min(...known.map((p) => p.min)),
    max: Math.max(...known.map((p) => p.max)),
  };
}
