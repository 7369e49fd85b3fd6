import type { TimelineRow } from './recorder.js';

// `fsale demo` sizes its default rate to what this machine can send next to the stack it
// runs: a short flood whose rate ramps up linearly against a sold-out product (the API's
// cheapest answer, which most buyers of a sale get), read second by second. The sustained
// rate is the target of the last second before the generator or the answers fell behind.

export interface Calibration {
  /** Highest per-second target met with send lag and p99 within the bound (0: none). */
  sustainedRate: number;
  /** The rate a demo should use: a share of it, rounded, within bounds. */
  rate: number;
}

export const CALIBRATION = {
  /** The ramp: 0 to this many arrivals/s over `seconds`. */
  maxRate: 6_000,
  seconds: 6,
  /** A second counts as kept when its worst send lag and its p99 latency stay within this. */
  boundMs: 20,
  /**
   * The demo runs at this share of the sustained rate: the sale itself also follows every
   * order (SSE and polling in the generator's process) and the workers and the gateway need
   * the same cores: they are busiest in the second the product sells out, when every
   * accepted order is persisted, charged and followed at once. At half, 1 demo in 2 on a
   * 2-core VM still fell behind in that second (send lag p99 78 ms at 1,200/s).
   */
  share: 0.35,
  minRate: 200,
  /**
   * However fast the generator: at 1,900/s (35 % of a ramp kept to its top, 5,500/s) 2 demos
   * in 3 on a 2-core VM had the stack answer the sell-out second so slowly that 1,000
   * requests were out at once, the generator's bound (ack p50 183–325 ms).
   */
  maxDemoRate: 1_000,
} as const;

/** The target of the last full second (in order) kept within the bound. */
export function sustainedRate(rows: readonly TimelineRow[], boundMs: number): number {
  let sustained = 0;
  for (const row of rows) {
    // Seconds without a target (after the ramp: the last answers coming in) say nothing.
    if (row.target === null || row.target <= 0 || row.sent === 0) continue;
    const kept =
      row.sendLagMax <= boundMs && (row.p99 ?? 0) <= boundMs && row.sent >= 0.95 * row.target;
    if (!kept) break;
    sustained = row.target;
  }
  return sustained;
}

export function calibrate(rows: readonly TimelineRow[], settings = CALIBRATION): Calibration {
  const sustained = sustainedRate(rows, settings.boundMs);
  const share = Math.floor((sustained * settings.share) / 100) * 100;
  return {
    sustainedRate: Math.round(sustained),
    rate: Math.min(settings.maxDemoRate, Math.max(settings.minRate, share)),
  };
}
