import { createTokenMinter } from '../auth/tokens.js';
import { arrivalTimes, type ArrivalProcess, type ArrivalSchedule } from './arrivals.js';
import { ownsUser, userOfArrival, WHOLE, type Slice } from './slices.js';

// Who buys when, with which token and Idempotency-Key. For the open model everything a send
// needs is made before the run by prepare(): the intended time of every arrival, its buyer's
// token, its key and the request's header list, so the hot path does no signing, no JSON
// encoding and no string building. The closed model (autocannon) asks next() per request.

export type AttemptKind = 'first' | 'retry' | 'double_click';

/** One buy as the buyer meant it: a retry or a double click reuses the original's user and key. */
export interface Purchase {
  user: number;
  key: string;
  /** The request's headers as undici takes them (name, value, ...); set by prepare(). */
  headerList?: string[];
}

export interface Attempt {
  purchase: Purchase;
  kind: AttemptKind;
  /** performance.now() of the click: the intended send time in the open model. */
  intendedAt: number;
}

export interface PlanOptions {
  jwtSecret: string;
  users: number;
  userPrefix: string;
  keyPrefix: string;
  tokenTtlSeconds: number;
  productId: string;
  qty: number;
  /** Fraction of sends that re-send an earlier purchase with the same key. */
  retryRatio: number;
  random: () => number;
  /** Tokens signed before the run starts (the rest are signed on first use). */
  premint: number;
}

/** Every arrival of a run (or of its slice), ready to send. */
export interface PreparedArrivals {
  count: number;
  /** Arrivals of the whole sale's schedule, of which `count` are this slice's. */
  wholeCount: number;
  /** Intended send time of each arrival, ms from the start of the run. */
  times: Float64Array;
  purchases: Purchase[];
  kinds: AttemptKind[];
}

export interface PrepareOptions {
  schedule: ArrivalSchedule;
  process: ArrivalProcess;
  /** Arrivals of the whole sale (--requests), or undefined: until the schedule's horizon. */
  limit: number | undefined;
  slice: Slice;
}

/** Arrivals prepared for one run at most: beyond it a run takes hundreds of MB of memory. */
export const MAX_PREPARED_ARRIVALS = 20_000_000;

/** Earlier purchases a retry picks from (the recent past: a retry follows its original closely). */
const RETRY_WINDOW = 1024;

export class PurchasePlan {
  readonly body: string;
  private readonly tokens: string[] = [];
  private readonly headers: Record<string, string>[] = [];
  private readonly mint: (userId: string) => string;
  private readonly recent: Purchase[] = [];
  private sequence = 0;
  private nextUser = 0;

  constructor(private readonly options: PlanOptions) {
    this.mint = createTokenMinter(options.jwtSecret, options.tokenTtlSeconds);
    this.body = JSON.stringify({ productId: options.productId, qty: options.qty });
    const premint = Math.min(options.users, options.premint);
    for (let user = 0; user < premint; user++) this.token(user);
  }

  userId(user: number): string {
    return `${this.options.userPrefix}${user}`;
  }

  token(user: number): string {
    let token = this.tokens[user];
    if (token === undefined) {
      token = this.mint(this.userId(user));
      this.tokens[user] = token;
    }
    return token;
  }

  /** The buy request's headers (one shared object per user; the key is added per send). */
  private userHeaders(user: number): Record<string, string> {
    let headers = this.headers[user];
    if (headers === undefined) {
      headers = {
        authorization: `Bearer ${this.token(user)}`,
        // No content-length: node:http sets it from end(body), and autocannon adds its own.
        'content-type': 'application/json',
      };
      this.headers[user] = headers;
    }
    return headers;
  }

  /** The header list of a purchase: built once, shared by its retries and double clicks. */
  private headerList(purchase: Purchase): string[] {
    return [
      'authorization',
      `Bearer ${this.token(purchase.user)}`,
      'content-type',
      'application/json',
      'content-length',
      String(Buffer.byteLength(this.body)),
      'idempotency-key',
      purchase.key,
    ];
  }

  /**
   * Walks the whole sale's schedule and keeps the arrivals of `slice`: their times, buyers,
   * keys and headers. A slot of the sale is a first purchase by its user (keyed by the slot's
   * number, unique across slices) or, with --retry-ratio, a replay of a recent purchase of the
   * same slice. The random draws depend on the slice, so slices with retries are not the
   * whole run cut in pieces, only a run with the same shape and the same share of retries.
   */
  prepare(options: PrepareOptions): PreparedArrivals {
    const { slice } = options;
    const nextTime = arrivalTimes(
      options.schedule,
      options.process,
      this.options.random,
      options.limit,
    );
    const times: number[] = [];
    const purchases: Purchase[] = [];
    const kinds: AttemptKind[] = [];
    let k = 0;
    for (let t = nextTime(); t !== undefined; k++, t = nextTime()) {
      const user = userOfArrival(k, this.options.users);
      if (slice !== WHOLE && !ownsUser(slice, user)) continue;
      if (times.length >= MAX_PREPARED_ARRIVALS)
        throw new RangeError(
          `more than ${MAX_PREPARED_ARRIVALS} arrivals in one process: shorten the run or split it with --threads / --part`,
        );
      times.push(t);
      const retry = this.retryPick();
      if (retry !== undefined) {
        purchases.push(retry);
        kinds.push('retry');
        continue;
      }
      const purchase: Purchase = { user, key: `${this.options.keyPrefix}${k}` };
      purchase.headerList = this.headerList(purchase);
      this.remember(purchase, purchases.length);
      purchases.push(purchase);
      kinds.push('first');
    }
    return {
      count: times.length,
      wholeCount: k,
      times: Float64Array.from(times),
      purchases,
      kinds,
    };
  }

  private retryPick(): Purchase | undefined {
    if (this.recent.length === 0 || this.options.retryRatio <= 0) return undefined;
    if (this.options.random() >= this.options.retryRatio) return undefined;
    return this.recent[Math.floor(this.options.random() * this.recent.length)];
  }

  private remember(purchase: Purchase, n: number): void {
    if (this.options.retryRatio <= 0) return;
    if (this.recent.length < RETRY_WINDOW) this.recent.push(purchase);
    else this.recent[n % RETRY_WINDOW] = purchase;
  }

  requestHeaders(purchase: Purchase): Record<string, string> {
    return { ...this.userHeaders(purchase.user), 'idempotency-key': purchase.key };
  }

  /** The next click: usually a new purchase by the next user, sometimes a retry of a recent one. */
  next(): { purchase: Purchase; kind: AttemptKind } {
    if (this.recent.length > 0 && this.options.retryRatio > 0) {
      if (this.options.random() < this.options.retryRatio) {
        const pick = this.recent[Math.floor(this.options.random() * this.recent.length)];
        if (pick !== undefined) return { purchase: pick, kind: 'retry' };
      }
    }
    const purchase: Purchase = {
      user: this.nextUser,
      key: `${this.options.keyPrefix}${this.sequence}`,
    };
    this.sequence += 1;
    this.nextUser = (this.nextUser + 1) % this.options.users;
    if (this.options.retryRatio > 0) {
      if (this.recent.length < RETRY_WINDOW) this.recent.push(purchase);
      else this.recent[this.sequence % RETRY_WINDOW] = purchase;
    }
    return { purchase, kind: 'first' };
  }
}
