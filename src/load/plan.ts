import { createTokenMinter } from '../auth/tokens.js';

// Who buys next, with which token and Idempotency-Key. Everything a send needs is made before
// the run (tokens for the expected number of buyers, the body) or is a string concatenation,
// so the hot path does no signing and no JSON encoding.

export type AttemptKind = 'first' | 'retry' | 'double_click';

/** One buy as the buyer meant it: a retry or a double click reuses the original's user and key. */
export interface Purchase {
  user: number;
  key: string;
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
