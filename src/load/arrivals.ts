// Open-model arrival schedules. The target rate is a function of time r(t): a constant R, a
// linear ramp from 0 to R over the first `ramp` seconds, multiplied by any spikes active at t.
// The schedule answers "when is arrival k intended?" by inverting the expected number of
// arrivals Λ(t) = ∫ r: uniform arrivals are at Λ⁻¹(k), Poisson ones at Λ⁻¹(S_k) where S_k is a
// sum of k unit exponentials (the time-rescaling theorem). Because every send has an intended
// time fixed in advance, latency is measured from it, and a stalled server cannot slow the
// arrivals down (no coordinated omission).

export interface Spike {
  /** The rate is multiplied by this while the spike lasts. */
  factor: number;
  atSeconds: number;
  forSeconds: number;
}

export interface RateShape {
  /** Arrivals per second once ramped up. */
  rate: number;
  /** Seconds of linear ramp from 0 to `rate` (0: start at full rate). */
  rampSeconds: number;
  spikes: readonly Spike[];
}

export class ShapeSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeSyntaxError';
  }
}

const NUMBER = '(\\d+(?:\\.\\d+)?|\\.\\d+)';

/** Seconds from `10`, `10s`, `500ms`, `2m`, `1.5m`. */
export function parseSeconds(text: string, what = 'duration'): number {
  const match = new RegExp(`^${NUMBER}(ms|s|m|h)?$`).exec(text.trim());
  if (match === null)
    throw new ShapeSyntaxError(
      `${what} must be a number of seconds, optionally with ms/s/m/h, got ${JSON.stringify(text)}`,
    );
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const scale = unit === 'ms' ? 0.001 : unit === 'm' ? 60 : unit === 'h' ? 3600 : 1;
  return value * scale;
}

/**
 * A spike: `FACTORx@START` (1 s long) or `FACTORx@START:LENGTH`, times in seconds from the
 * start of the run with an optional unit: `5x@10s`, `3x@20s:5s`, `10x@1.5`.
 */
export function parseSpike(text: string): Spike {
  const match = /^\s*([^x@\s]+)x?@([^:]+)(?::(.+))?$/.exec(text);
  const factor = Number(match?.[1]);
  if (match === null || !Number.isFinite(factor) || factor <= 0) {
    throw new ShapeSyntaxError(
      `--spike must look like 5x@10s or 5x@10s:2s (factor x @ start : length), got ${JSON.stringify(text)}`,
    );
  }
  const atSeconds = parseSeconds(match[2] ?? '', '--spike start');
  const forSeconds = match[3] === undefined ? 1 : parseSeconds(match[3], '--spike length');
  if (forSeconds <= 0) throw new ShapeSyntaxError(`--spike length must be positive in ${text}`);
  return { factor, atSeconds, forSeconds };
}

interface Segment {
  start: number;
  end: number;
  /** Rate at the start and just before the end (linear in between). */
  r0: number;
  r1: number;
  /** Λ(start) */
  before: number;
}

export class ArrivalSchedule {
  private readonly segments: Segment[] = [];

  /**
   * @param horizonSeconds where the schedule ends (the run's duration); undefined runs forever
   *   (a run bounded by a request count).
   */
  constructor(
    readonly shape: RateShape,
    readonly horizonSeconds: number | undefined,
  ) {
    if (!(shape.rate > 0)) throw new ShapeSyntaxError('the rate must be positive');
    const points = new Set<number>([0]);
    if (shape.rampSeconds > 0) points.add(shape.rampSeconds);
    for (const spike of shape.spikes) {
      points.add(spike.atSeconds);
      points.add(spike.atSeconds + spike.forSeconds);
    }
    if (horizonSeconds !== undefined) points.add(horizonSeconds);
    const sorted = [...points]
      .filter((p) => p >= 0 && (horizonSeconds === undefined || p <= horizonSeconds))
      .sort((a, b) => a - b);
    let before = 0;
    for (let i = 0; i < sorted.length; i++) {
      const start = sorted[i] ?? 0;
      const end = sorted[i + 1] ?? (horizonSeconds === undefined ? Infinity : start);
      if (end <= start) continue;
      // Spikes are constant over a segment (their edges are breakpoints); sample the middle.
      const factor = this.spikeFactor(Number.isFinite(end) ? (start + end) / 2 : start + 0.5);
      const r0 = this.baseRate(start) * factor;
      const r1 = (Number.isFinite(end) ? this.baseRate(end) : this.shape.rate) * factor;
      this.segments.push({ start, end, r0, r1, before });
      if (Number.isFinite(end)) before += ((r0 + r1) / 2) * (end - start);
    }
  }

  private baseRate(t: number): number {
    const { rate, rampSeconds } = this.shape;
    return rampSeconds > 0 && t < rampSeconds ? (rate * t) / rampSeconds : rate;
  }

  private spikeFactor(t: number): number {
    let factor = 1;
    for (const s of this.shape.spikes)
      if (t >= s.atSeconds && t < s.atSeconds + s.forSeconds) factor *= s.factor;
    return factor;
  }

  /** The target rate at t seconds (arrivals/s). */
  rateAt(t: number): number {
    if (t < 0 || (this.horizonSeconds !== undefined && t >= this.horizonSeconds)) return 0;
    return this.baseRate(t) * this.spikeFactor(t);
  }

  /** Λ(t): arrivals expected in [0, t). */
  expectedArrivals(t: number): number {
    let total = 0;
    for (const s of this.segments) {
      if (t <= s.start) break;
      const tau = Math.min(t, s.end) - s.start;
      const length = s.end - s.start;
      const slope = Number.isFinite(length) ? (s.r1 - s.r0) / length : 0;
      total = s.before + s.r0 * tau + (slope * tau * tau) / 2;
      if (t <= s.end) break;
    }
    return total;
  }

  /** Λ⁻¹(n): the time (s) by which n arrivals are expected, or undefined past the horizon. */
  timeOfArrival(n: number): number | undefined {
    for (const s of this.segments) {
      const length = s.end - s.start;
      const inSegment = Number.isFinite(length) ? ((s.r0 + s.r1) / 2) * length : Infinity;
      if (n >= s.before + inSegment) continue;
      const c = n - s.before;
      const a = Number.isFinite(length) ? (s.r1 - s.r0) / (2 * length) : 0;
      // Root of a·τ² + r0·τ = c, written to stay exact when a = 0 or r0 = 0.
      const tau = c === 0 ? 0 : (2 * c) / (s.r0 + Math.sqrt(s.r0 * s.r0 + 4 * a * c));
      return s.start + tau;
    }
    return undefined;
  }

  /** Mean target rate over [0, seconds). */
  meanRate(seconds: number): number {
    return seconds > 0 ? this.expectedArrivals(seconds) / seconds : 0;
  }
}

/** A small seedable PRNG (mulberry32): runs with the same --seed send the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type ArrivalProcess = 'uniform' | 'poisson';

/**
 * The intended times (ms from the start) of successive arrivals; undefined once the schedule
 * (or `limit` arrivals) is exhausted.
 */
export function arrivalTimes(
  schedule: ArrivalSchedule,
  process: ArrivalProcess,
  random: () => number,
  limit: number | undefined,
): () => number | undefined {
  let k = 0;
  let area = 0;
  return () => {
    if (limit !== undefined && k >= limit) return undefined;
    if (process === 'poisson' && k > 0) area += -Math.log(1 - random());
    else if (process === 'uniform') area = k;
    k += 1;
    const t = schedule.timeOfArrival(area);
    return t === undefined ? undefined : t * 1000;
  };
}
