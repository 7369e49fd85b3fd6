// The mock payment provider's behaviour: what one charge attempt does and how long it takes.
// Pure and seedable, so tests measure the distribution directly and a run can be replayed.
//
// Seeding: every attempt gets its own generator, seeded from a 128-bit hash of
// (seed, key, attempt number of that key). The outcome for a key therefore depends only on
// the seed, the key and how many times that key was drawn before, never on how requests for
// different keys interleave: the same seed gives the same outcome and the same charge id for
// the same key in any arrival order, on any number of concurrent connections.

/** Probability of each failure per attempt; what remains is success. */
export interface OutcomeRates {
  /** No answer at all; the charge was taken or not (50/50, seeded) and the ledger says which. */
  hang: number;
  /** 503: transient, nothing recorded, a retry draws again. */
  unavailable: number;
  /** 429 with Retry-After: transient, nothing recorded, a retry draws again. */
  rateLimited: number;
  /** 402: final, recorded; the key stays declined. */
  declined: number;
}

const RATE_NAMES = ['hang', 'unavailable', 'rateLimited', 'declined'] as const;

export const DEFAULT_RATES: Readonly<OutcomeRates> = {
  hang: 0.01,
  unavailable: 0.02,
  rateLimited: 0.01,
  declined: 0.05,
};

/** Latency at speed 1: log-normal with this median and 95th percentile. */
export const LATENCY_MEDIAN_MS = 650;
export const LATENCY_P95_MS = 2300;
/** z of the 95th percentile of the standard normal distribution. */
const Z95 = 1.6448536269514722;
export const LATENCY_SIGMA = Math.log(LATENCY_P95_MS / LATENCY_MEDIAN_MS) / Z95;

/** Seconds a 429 asks the caller to wait at speed 1 (uniform, inclusive), before --speed. */
const RETRY_AFTER_SECONDS = { min: 1, max: 3 } as const;

export const DECLINE_CODES = [
  'card_declined',
  'insufficient_funds',
  'expired_card',
  'do_not_honor',
] as const;
export type DeclineCode = (typeof DECLINE_CODES)[number];

export type Outcome =
  | { kind: 'succeeded'; latencyMs: number; chargeId: string }
  | { kind: 'declined'; latencyMs: number; declineCode: DeclineCode }
  | { kind: 'unavailable'; latencyMs: number }
  | { kind: 'rateLimited'; latencyMs: number; retryAfterSeconds: number }
  /** `charged`: the provider took the money but the answer never left (or it never charged). */
  | { kind: 'hang'; charged: boolean; chargeId: string };

export interface BehaviourModel {
  /** Unsigned 32-bit seed. */
  seed: number;
  /** Latencies (and Retry-After) are divided by this; 100 makes a 650 ms median 6.5 ms. */
  speed: number;
  rates: OutcomeRates;
}

export const MAX_SEED = 0xffff_ffff;

/** A readable reason the model is unusable, or undefined when it is fine. */
export function modelProblem(model: BehaviourModel): string | undefined {
  if (!Number.isInteger(model.seed) || model.seed < 0 || model.seed > MAX_SEED) {
    return `seed must be an integer 0-${MAX_SEED}, got ${model.seed}`;
  }
  if (!Number.isFinite(model.speed) || model.speed <= 0) {
    return `speed must be a positive number, got ${model.speed}`;
  }
  let total = 0;
  for (const name of RATE_NAMES) {
    const rate = model.rates[name];
    if (!Number.isFinite(rate) || rate < 0 || rate > 1) {
      return `rate ${name} must be between 0 and 1, got ${rate}`;
    }
    total += rate;
  }
  // A little slack so that rates like 0.1 + 0.2 + ... adding up to 1 are not refused.
  if (total > 1 + 1e-9) return `the failure rates add up to ${total}, more than 1`;
  return undefined;
}

/** Draws the outcome of attempt number `attempt` (0 first) for `key`. */
export function drawOutcome(model: BehaviourModel, key: string, attempt: number): Outcome {
  const random = attemptRandom(model.seed, key, attempt);
  // Every draw is taken in the same order whatever the outcome, so one outcome's fields never
  // shift another's: changing the rates changes which kind a key gets, not its latency.
  const pick = random();
  const latencyMs = logNormalLatencyMs(random(), random()) / model.speed;
  const coin = random();
  const chargeId = `ch_${hex32(random())}${hex32(random())}${hex32(random())}`;
  const declineCode = DECLINE_CODES[Math.floor(random() * DECLINE_CODES.length)] ?? 'card_declined';
  const retrySpan = RETRY_AFTER_SECONDS.max - RETRY_AFTER_SECONDS.min + 1;
  const retryAtSpeed1 = RETRY_AFTER_SECONDS.min + Math.floor(random() * retrySpan);
  // Retry-After is whole seconds; it never drops to 0, which some clients read as "now, forever".
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAtSpeed1 / model.speed));

  const { hang, unavailable, rateLimited, declined } = model.rates;
  let edge = hang;
  if (pick < edge) return { kind: 'hang', charged: coin < 0.5, chargeId };
  edge += unavailable;
  if (pick < edge) return { kind: 'unavailable', latencyMs };
  edge += rateLimited;
  if (pick < edge) return { kind: 'rateLimited', latencyMs, retryAfterSeconds };
  edge += declined;
  if (pick < edge) return { kind: 'declined', latencyMs, declineCode };
  return { kind: 'succeeded', latencyMs, chargeId };
}

/**
 * Latency in ms at speed 1 from two uniforms in [0, 1): log-normal (Box-Muller) with median
 * LATENCY_MEDIAN_MS and 95th percentile LATENCY_P95_MS.
 */
export function logNormalLatencyMs(u1: number, u2: number): number {
  // 1 - u1 is in (0, 1], so the logarithm is finite.
  const z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  return LATENCY_MEDIAN_MS * Math.exp(LATENCY_SIGMA * z);
}

/** The generator of one attempt: sfc32 seeded with cyrb128(seed, attempt, key). */
export function attemptRandom(seed: number, key: string, attempt: number): () => number {
  const [a, b, c, d] = cyrb128(`${seed}\u0000${attempt}\u0000${key}`);
  const random = sfc32(a, b, c, d);
  // sfc32's first outputs still show the structure of its seed; the usual warm-up.
  for (let i = 0; i < 15; i++) random();
  return random;
}

/** sfc32 (Chris Doty-Humphrey's Small Fast Counter): uniform numbers in [0, 1). */
export function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** cyrb128 (bryc): a fast 128-bit string hash, as four unsigned 32-bit words. */
export function cyrb128(text: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

function hex32(u: number): string {
  return Math.floor(u * 4294967296)
    .toString(16)
    .padStart(8, '0');
}
