import { idempotencyKey, productKeys, type ProductKeys } from '../redis/keys.js';
import type { BuyPathRedis } from '../redis/resp-cluster.js';
import type { Durability } from '../redis/resp.js';
import { homeShard, type ProductLayout } from '../redis/sale-state.js';
import { runBuyScript, type BuyScriptReply } from '../redis/scripts.js';
import { borrowUnits, type StockLayouts } from './stock-shards.js';

/**
 * How the API takes a buy. `queue` (Approach 2, the default): one Redis script reserves the
 * stock and appends the order to a stream; `fsale work orders` persists it later (202).
 * `sync` (Approach 1): one PostgreSQL transaction takes the stock and inserts the order (201);
 * see src/sale/sync-buy.ts.
 */
export const BUY_MODES = ['queue', 'sync'] as const;
export type BuyMode = (typeof BUY_MODES)[number];

/** Result codes of src/redis/lua/buy-7.lua (and of fsale_sync_buy in sql/000003). */
export const BuyCode = {
  Accepted: 1,
  SoldOut: 2,
  InsufficientStock: 3,
  LimitReached: 4,
  NotOpen: 5,
  UnknownProduct: 6,
  IdempotencyMismatch: 7,
  RateLimited: 8,
  /**
   * A sharded product's tail: the buyer's home shard stayed empty through several rounds of
   * borrowing because others took the units first. Nothing was reserved; retry shortly.
   */
  Contended: 11,
  /** `serve --mode sync` takes stock from PostgreSQL and does not sell a sharded product. */
  StockSharded: 12,
} as const;
export type BuyCode = (typeof BuyCode)[keyof typeof BuyCode];

/** The buy script's answers that never leave reserveStock (see buy-7.lua). */
const LAYOUT_CHANGED = 9;
const SHARD_EMPTY = 10;

/** Rounds of buy-then-borrow before a sharded product's buyer is told to retry (Contended). */
const MAX_BUY_ROUNDS = 8;

export interface BuyRequest {
  productId: string;
  userId: string;
  qty: number;
  idempotencyKey: string;
  /**
   * The order this request names, keyedOrderIds of the rest (src/domain/order-id.ts): the
   * same for every retry. Used when the request is accepted, and to recognise a retry of an
   * accepted buy whose idempotency record Redis lost.
   */
  orderId: string;
}

export interface BuyResult {
  code: BuyCode;
  /** True when this is the stored answer of an earlier request with the same key. */
  replayed: boolean;
  /** The order id when accepted (also for a replayed accept). */
  orderId: string;
  /** Units left after an accept; -1 when unknown. */
  remaining: number;
  /** For RateLimited: ms until the window resets. */
  retryAfterMs: number;
}

export interface BuyPolicy {
  /** Buys per user per product per window; 0 disables the limit. */
  rateLimit: number;
  rateWindowMs: number;
  /**
   * `serve --durability replica`: an accept counts (202) only once this many replicas have the
   * buy's writes (WAIT on the buy's connection, in the same write as the script). Fewer within
   * the timeout answers 503 outcome_unknown: the unit may be reserved; a retry with the same
   * key is safe. Undefined: answer as soon as the master has it (`--durability none`).
   */
  durability?: Durability | undefined;
}

/** `serve --durability`: see BuyPolicy.durability. */
export const DURABILITY_MODES = ['none', 'replica'] as const;

/** How long a buy waits for a replica under `--durability replica` by default. */
export const DEFAULT_DURABILITY_TIMEOUT_MS = 500;

export const DEFAULT_BUY_POLICY: BuyPolicy = {
  rateLimit: 20,
  rateWindowMs: 1_000,
};

/** The request fingerprint: same key with another product or quantity is a mismatch (422). */
export function fingerprint(productId: string, qty: number): string {
  return `${productId}:${qty}`;
}

/**
 * The idempotency record of an accepted buy, as the buy script writes it (src/redis/lua/buy-7.lua):
 * "<code>|<orderId>|<fingerprint>". Also written by the order worker and `--rebuild-redis` when
 * they restore a lost record from PostgreSQL.
 */
export function acceptedRecord(orderId: string, productId: string, qty: number): string {
  return `${BuyCode.Accepted}|${orderId}|${fingerprint(productId, qty)}`;
}

/** The keys a buyer buys on: the product's, or their home shard's when it is sharded. */
function buyerKeys(
  prefix: string,
  layout: ProductLayout | undefined,
  request: Pick<BuyRequest, 'productId' | 'userId'>,
): ProductKeys {
  return layout === undefined
    ? productKeys(prefix, request.productId)
    : homeShard(layout, request.userId);
}

export const rejectedBuy = (code: BuyCode): BuyResult => ({
  code,
  replayed: false,
  orderId: '',
  remaining: -1,
  retryAfterMs: 0,
});

/**
 * Reserves stock for one buy in one Redis round trip (the buy script), on the buyer's home
 * shard when the product's stock is sharded. There, a home shard without enough units borrows
 * from the others and buys again; the buyer is told sold out (or insufficient stock) only once
 * borrowUnits has shown that the whole product lacked the units (docs/ARCHITECTURE.md
 * section 10). Without `layouts`, a sharded product is an error.
 */
export async function reserveStock(
  redis: BuyPathRedis,
  prefix: string,
  request: BuyRequest,
  policy: BuyPolicy = DEFAULT_BUY_POLICY,
  layouts?: StockLayouts,
): Promise<BuyResult> {
  let layout = layouts?.known(request.productId);
  let counted = false;
  for (let round = 1; ; round++) {
    const keys = buyerKeys(prefix, layout, request);
    const reply = await runBuyScript(redis, keys, {
      orderId: request.orderId,
      userId: request.userId,
      qty: request.qty,
      idempotencyKey: request.idempotencyKey,
      fingerprint: fingerprint(request.productId, request.qty),
      // One request is one attempt: once a round has counted it, the next ones do not.
      rateLimit: counted ? 0 : policy.rateLimit,
      rateWindowMs: policy.rateWindowMs,
      durability: policy.durability,
    });
    // A layout read before a `seed --reset` with another shard count names keys that are gone.
    const stale =
      reply.code === LAYOUT_CHANGED ||
      (reply.code === BuyCode.UnknownProduct && layout !== undefined);
    if (stale && round <= 2) {
      if (layouts === undefined) throw new Error(`product ${request.productId} is stock-sharded`);
      layout = await layouts.refresh(request.productId);
      continue;
    }
    if (stale) return rejectedBuy(BuyCode.Contended);
    counted = true;
    if (reply.code !== SHARD_EMPTY || layouts === undefined || layout === undefined)
      return buyResult(reply, layout === undefined);
    if (round >= MAX_BUY_ROUNDS) return rejectedBuy(BuyCode.Contended);
    const borrowed = await borrowUnits(
      layouts.redis,
      layout,
      keys,
      request.qty,
      reply.extra,
      policy.durability,
    );
    if (borrowed.kind === 'short')
      return rejectedBuy(borrowed.units === 0 ? BuyCode.SoldOut : BuyCode.InsufficientStock);
  }
}

function buyResult(reply: BuyScriptReply, unsharded: boolean): BuyResult {
  const { code, replayed, orderId, extra } = reply;
  return {
    code: code as BuyCode,
    replayed,
    orderId,
    // A shard's units left are not the product's: only an unsharded accept tells them.
    remaining: code === BuyCode.Accepted && !replayed && unsharded ? extra : -1,
    retryAfterMs: code === BuyCode.RateLimited ? extra : 0,
  };
}

/**
 * The sold-out fast path: reads only, so a retry of an accepted buy still gets its 202 while a
 * new request is refused without running the script. In one round trip (two commands sent
 * together, in the same slot) it reads the key's record and whether the owner index holds the
 * request's own order id: the buy was accepted before and its record lost (the buy script
 * replays it the same way). Returns undefined when neither (the caller answers sold out,
 * recording nothing, exactly as the script would).
 */
export async function replayStoredAnswer(
  redis: BuyPathRedis,
  prefix: string,
  request: BuyRequest,
  layouts?: StockLayouts,
): Promise<BuyResult | undefined> {
  const keys = buyerKeys(prefix, layouts?.known(request.productId), request);
  const [record, owner] = await Promise.all([
    redis.call(['GET', idempotencyKey(keys, request.userId, request.idempotencyKey)]),
    redis.call(['HGET', keys.owners, request.orderId]),
  ]);
  const match = typeof record === 'string' ? /^(\d+)\|([^|]*)\|(.*)$/s.exec(record) : null;
  if (match !== null) {
    const [, code, orderId, stored] = match;
    return storedAnswer(request, Number(code), orderId ?? '', stored ?? '');
  }
  if (owner !== request.userId) return undefined;
  return storedAnswer(
    request,
    BuyCode.Accepted,
    request.orderId,
    fingerprint(request.productId, request.qty),
  );
}

/**
 * The answer a stored idempotency record gives this request (queue mode keeps records in
 * Redis, sync mode in PostgreSQL): a replay of the first answer, or a mismatch (422) when the
 * same key came with another product or quantity.
 */
export function storedAnswer(
  request: Pick<BuyRequest, 'productId' | 'qty'>,
  code: number,
  orderId: string,
  storedFingerprint: string,
): BuyResult {
  if (storedFingerprint !== fingerprint(request.productId, request.qty)) {
    return rejectedBuy(BuyCode.IdempotencyMismatch);
  }
  return { code: code as BuyCode, replayed: true, orderId, remaining: -1, retryAfterMs: 0 };
}
