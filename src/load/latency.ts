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
