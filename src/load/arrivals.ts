// Open-model arrival schedules. The target rate is a function of time r(t): a constant R, a
// linear ramp from 0 to R over the first `ramp` seconds, multiplied by any spikes active at t.
// The schedule answers "when is arrival k intended?" by inverting the expected number of
// arrivals Λ(t) = ∫ r: uniform arrivals are at Λ⁻¹(k), Poisson ones at Λ⁻¹(S_k) where S_k is a
// sum of k unit exponentials (the time-rescaling theorem). Because every send has an intended
// time fixed in advance, latency is measured from it, and a stalled server cannot slow the
// arrivals down (no coordinated omission).

import { DurationSyntaxError, parseDuration } from '../cli/duration.js';

export interface Spike {
  /** The rate is multiplied by this while the spike lasts. */
  factor: number;
  atSeconds: number;
  forSeconds: number;
}

/** One stage of `--stages`: the rate goes linearly to `target` over `durationSeconds`. */
export interface Stage {
  durationSeconds: number;
  target: number;
}

export interface RateShape {
  /** Arrivals per second once ramped up (with stages: their highest target). */
  rate: number;
  /** Seconds of linear ramp from 0 to `rate` (0: start at full rate). */
  rampSeconds: number;
  spikes: readonly Spike[];
  /**
   * k6's ramping-arrival-rate: from 0, each stage ramps linearly from the previous target to
   * its own; past the last stage the rate is 0. Replaces `rate` and `rampSeconds` when given.
   */
  stages?: readonly Stage[] | undefined;
}

export class ShapeSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeSyntaxError';
  }
}

/** Seconds from a duration in the CLI's one syntax (`500ms`, `10s`, `1.5m`); no bare numbers. */
function seconds(text: string, what: string): number {
  try {
    return parseDuration(text, what) / 1000;
  } catch (error) {
    if (error instanceof DurationSyntaxError) throw new ShapeSyntaxError(error.message);
    throw error;
  }
}

/**
 * A spike: `FACTORx@START` (1 s long) or `FACTORx@START:LENGTH`, times in seconds from the
 * start of the run in the duration syntax: `5x@10s`, `3x@20s:5s`, `10x@1.5s`.
 */
export function parseSpike(text: string): Spike {
  const match = /^\s*([^x@\s]+)x?@([^:]+)(?::(.+))?$/.exec(text);
  const factor = Number(match?.[1]);
  if (match === null || !Number.isFinite(factor) || factor <= 0) {
    throw new ShapeSyntaxError(
      `--spike must look like 5x@10s or 5x@10s:2s (factor x @ start : length), got ${JSON.stringify(text)}`,
    );
  }
  const atSeconds = seconds(match[2] ?? '', '--spike start');
  const forSeconds = match[3] === undefined ? 1 : seconds(match[3], '--spike length');
  if (forSeconds <= 0) throw new ShapeSyntaxError(`--spike length must be positive in ${text}`);
  return { factor, atSeconds, forSeconds };
}

/** `--stages 10s:1000,30s:5000,10s:0`: DURATION:TARGET, comma-separated, durations positive. */
export function parseStages(text: string): Stage[] {
  const parts = text.split(',').map((p) => p.trim());
  const stages = parts.map((part) => {
    const match = /^([^:]+):(\d+(?:\.\d+)?)$/.exec(part);
    if (match === null)
      throw new ShapeSyntaxError(
        `--stages must look like 10s:1000,30s:5000,10s:0 (duration:arrivals per second, ...), got ${JSON.stringify(part)} in ${JSON.stringify(text)}`,
      );
    const durationSeconds = seconds(match[1] ?? '', '--stages duration');
    if (!(durationSeconds > 0))
      throw new ShapeSyntaxError(
        `--stages durations must be positive, got ${JSON.stringify(part)}`,
      );
    return { durationSeconds, target: Number(match[2]) };
  });
  if (!stages.some((stage) => stage.target > 0))
    throw new ShapeSyntaxError(`--stages must reach a rate above 0, got ${JSON.stringify(text)}`);
  return stages;
}

/** How long the stages last together. */
export const stagesSeconds = (stages: readonly Stage[]): number =>
  stages.reduce((sum, stage) => sum + stage.durationSeconds, 0);

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
  readonly horizonSeconds: number | undefined;

  constructor(
    readonly shape: RateShape,
    horizon: number | undefined,
  ) {
    if (!(shape.rate > 0)) throw new ShapeSyntaxError('the rate must be positive');
    // Stages end the schedule: past the last one the rate is 0.
    const stagesEnd = shape.stages === undefined ? undefined : stagesSeconds(shape.stages);
    const horizonSeconds =
      stagesEnd === undefined ? horizon : Math.min(horizon ?? Infinity, stagesEnd);
    this.horizonSeconds = horizonSeconds;
    const points = new Set<number>([0]);
    if (shape.rampSeconds > 0) points.add(shape.rampSeconds);
    let stageEnd = 0;
    for (const stage of shape.stages ?? []) points.add((stageEnd += stage.durationSeconds));
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
      // The rate is continuous at stage and ramp edges, so its value at `end` is the limit
      // from inside the segment. Open-ended: the last rate goes on.
      const r1 = (Number.isFinite(end) ? this.baseRate(end) : this.baseRate(start)) * factor;
      this.segments.push({ start, end, r0, r1, before });
      if (Number.isFinite(end)) before += ((r0 + r1) / 2) * (end - start);
    }
  }

  private baseRate(t: number): number {
    const { rate, rampSeconds, stages } = this.shape;
    if (stages !== undefined) return stageRate(stages, t);
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

/** The rate of `stages` at t: linear from the previous stage's target (0 first) to this one's. */
function stageRate(stages: readonly Stage[], t: number): number {
  let from = 0;
  let start = 0;
  for (const stage of stages) {
    const end = start + stage.durationSeconds;
    if (t < end) return from + ((stage.target - from) * (t - start)) / stage.durationSeconds;
    from = stage.target;
    start = end;
  }
  // At the very end of the last stage its target is the limit from the left.
  return t === start ? from : 0;
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
