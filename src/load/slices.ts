// How one sale's arrival schedule is split between threads and between machines. Arrival k of
// the whole sale is made by user k mod users (a retry slot replays a recent purchase of the
// same slice instead); a slice owns the users u with u mod count = index. Slicing by user, not
// by arrival, is what keeps two parts of one sale from ever sharing a buyer: per-user limits
// and idempotency keys stay inside one part, so parts run anywhere, at once, unaware of each
// other, and add up to the sale one process would have run.

export interface Slice {
  /** 0-based. */
  index: number;
  count: number;
}

export const WHOLE: Slice = { index: 0, count: 1 };

export class SliceSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SliceSyntaxError';
  }
}

/** `--part K/N` (1-based K, as people count machines) to a slice. */
export function parsePart(text: string): Slice {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const k = Number(match?.[1]);
  const n = Number(match?.[2]);
  if (match === null || !Number.isInteger(n) || n < 1 || !(k >= 1 && k <= n))
    throw new SliceSyntaxError(
      `--part must be K/N with 1 <= K <= N, e.g. 2/3, got ${JSON.stringify(text)}`,
    );
  return { index: k - 1, count: n };
}

/** The user who makes arrival `k` of the whole sale. */
export const userOfArrival = (k: number, users: number): number => k % users;

export const ownsUser = (slice: Slice, user: number): boolean => user % slice.count === slice.index;

/**
 * Thread `thread` of part `part`: slice part.index + part.count·thread.index of
 * part.count·thread.count. Its users satisfy u mod part.count = part.index, so every thread's
 * users belong to its part, and the threads of a part split the part's users between them.
 */
export function subSlice(part: Slice, thread: Slice): Slice {
  return { index: part.index + part.count * thread.index, count: part.count * thread.count };
}

/** The arrivals of `slice` among `total` (for sizing before the schedule is walked). */
export function arrivalsInSlice(slice: Slice, total: number, users: number): number {
  if (slice.count === 1) return total;
  let owned = 0;
  for (let u = 0; u < Math.min(users, total); u++) if (ownsUser(slice, u)) owned += 1;
  // Every full round of `users` arrivals gives each owned user one arrival.
  const rounds = Math.floor(total / users);
  let count = rounds * owned;
  for (let k = rounds * users; k < total; k++)
    if (ownsUser(slice, userOfArrival(k, users))) count += 1;
  return count;
}

/** --start-at may lie at most this far ahead: a sale is scheduled today, not next month. */
export const MAX_START_AHEAD_MS = 24 * 3600_000;

/**
 * `--start-at 2026-12-01T12:00:00Z` (an ISO time with a zone, or epoch ms) to epoch ms, in the
 * future and at most a day ahead. Every part of a sale waits for the same instant, so their
 * schedules line up to within the machines' clock skew (NTP keeps it to milliseconds).
 */
export function parseStartAt(text: string, now: number): number {
  const trimmed = text.trim();
  const at = /^\d{12,}$/.test(trimmed) ? Number(trimmed) : Date.parse(trimmed);
  if (!Number.isFinite(at) || (!/^\d+$/.test(trimmed) && !/(Z|[+-]\d\d:?\d\d)$/i.test(trimmed)))
    throw new SliceSyntaxError(
      `--start-at must be an ISO time with its zone (2026-12-01T12:00:00Z) or epoch ms, got ${JSON.stringify(text)}`,
    );
  if (at <= now)
    throw new SliceSyntaxError(
      `--start-at ${new Date(at).toISOString()} is in the past (now ${new Date(now).toISOString()})`,
    );
  if (at - now > MAX_START_AHEAD_MS)
    throw new SliceSyntaxError(
      `--start-at ${new Date(at).toISOString()} is more than 24 h ahead (now ${new Date(now).toISOString()})`,
    );
  return at;
}
