// A crowd of buyers over HTTP: distinct users with tokens and keys, bounded concurrency, and
// every answer (or network error) recorded.
import { mintTokens } from '../../src/auth/tokens.js';
import { send } from './http.js';
import { TEST_JWT_SECRET } from './services.js';

export interface Buyer {
  user: string;
  token: string;
  key: string;
}

export function buyers(tag: string, n: number, ttlSeconds = 1800): Buyer[] {
  const users = Array.from({ length: n }, (_, i) => `${tag}${i}`);
  const tokens = mintTokens(TEST_JWT_SECRET, users, ttlSeconds);
  return users.map((user, i) => ({ user, token: tokens[i] ?? '', key: `${user}-k1` }));
}

export interface BuyAnswer {
  user: string;
  key: string;
  /** 0 when no HTTP answer came (see `error`). */
  status: number;
  body: string;
  replayed: boolean;
  orderId: string | undefined;
  /** The Retry-After header, if the answer had one (429, 503). */
  retryAfter: string | undefined;
  /** The network error code (ECONNREFUSED, ECONNRESET, ...) when there was no answer. */
  error: string | undefined;
}

/** One POST /order/buy; a network error is recorded, not thrown. */
export async function buyOnce(url: string, productId: string, buyer: Buyer): Promise<BuyAnswer> {
  try {
    const res = await send(url, {
      method: 'POST',
      path: '/order/buy',
      headers: { authorization: `Bearer ${buyer.token}`, 'idempotency-key': buyer.key },
      body: { productId, qty: 1 },
    });
    let orderId: string | undefined;
    if (res.status === 202) orderId = (JSON.parse(res.body) as { orderId: string }).orderId;
    return {
      user: buyer.user,
      key: buyer.key,
      status: res.status,
      body: res.body,
      replayed: res.headers['idempotent-replayed'] === 'true',
      orderId,
      retryAfter: res.headers['retry-after'],
      error: undefined,
    };
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    return {
      user: buyer.user,
      key: buyer.key,
      status: 0,
      body: '',
      replayed: false,
      orderId: undefined,
      retryAfter: undefined,
      error: code,
    };
  }
}

/**
 * Every buyer buys once, at most `concurrency` requests in flight; `target(i)` picks the API
 * for the i-th request. `onProgress(done)` runs after each answer (e.g. to inject a fault).
 */
export async function crowd(
  target: (i: number) => string,
  productId: string,
  list: Buyer[],
  concurrency: number,
  onProgress?: (done: number) => void,
): Promise<BuyAnswer[]> {
  const answers: BuyAnswer[] = new Array<BuyAnswer>(list.length);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < list.length) {
      const i = next++;
      const buyer = list[i];
      if (buyer === undefined) break;
      answers[i] = await buyOnce(target(i), productId, buyer);
      done += 1;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, lane));
  return answers;
}

/** Status -> count, network errors as `error:<code>`. */
export function tally(answers: BuyAnswer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const label = a.status === 0 ? `error:${a.error ?? '?'}` : String(a.status);
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}
