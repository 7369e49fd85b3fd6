// The two ways the API takes a buy, each a small strategy chosen once when the route is built
// (docs/ARCHITECTURE.md section 2): `queue` reserves in Redis and lets the order worker persist
// (202); `sync` runs one PostgreSQL transaction (201).
import {
  BuyCode,
  rejectedBuy,
  replayStoredAnswer,
  reserveStock,
  type BuyMode,
  type BuyRequest,
  type BuyResult,
} from '../sale/buy.js';
import { waitsForReplicas } from '../redis/resp.js';
import { placeOrder, storedSyncAnswer } from '../sale/sync-buy.js';
import type { ApiContext } from './app.js';

export interface BuyStrategy {
  mode: BuyMode;
  /** What an accept answers: queued (202) in queue mode, already persisted (201) in sync mode. */
  accepted: { status: 201 | 202; orderStatus: string };
  /** This mode's own backlog is past its bound: answer 503 before taking the buy. */
  overloaded(): boolean;
  /**
   * The sold-out fast path: the answer (product, user, key) already has, if any: its record,
   * or in queue mode the request's own order (its id in the owner index) when the record is lost.
   */
  storedAnswer(request: BuyRequest): Promise<BuyResult | undefined>;
  buy(request: BuyRequest): Promise<BuyResult>;
}

export function buyStrategy(api: ApiContext): BuyStrategy {
  const { pool, redis, buyRedis, keyPrefix, policy, mirror, maxPgWaiting, layouts } = api;
  if (api.mode === 'sync') {
    const stores = { pool, redis, keyPrefix, mirror };
    return {
      mode: 'sync',
      accepted: { status: 201, orderStatus: 'pending' },
      // Sync mode's backlog is the queue for a PostgreSQL connection: past a bound, waiting
      // longer only turns into timeouts.
      overloaded: () => pool.waitingCount > maxPgWaiting,
      storedAnswer: (request) => storedSyncAnswer(pool, request),
      buy: async (request) =>
        (await layouts.isSharded(request.productId))
          ? rejectedBuy(BuyCode.StockSharded)
          : placeOrder(stores, request, policy),
    };
  }
  return {
    mode: 'queue',
    accepted: { status: 202, orderStatus: 'queued' },
    // The order stream's lag is watched by Backpressure for both modes.
    overloaded: () => false,
    storedAnswer: async (request) => {
      const stored = await replayStoredAnswer(buyRedis, keyPrefix, request, layouts);
      // Under `--durability replica` a 202 counts only once a replica has it, and the record
      // read here may be on the master alone (its first answer was 503 outcome_unknown): the
      // buy script replays it with a write that its WAIT then covers.
      if (stored?.code === BuyCode.Accepted && waitsForReplicas(policy.durability))
        return reserveStock(buyRedis, keyPrefix, request, policy, layouts);
      return stored;
    },
    buy: (request) => reserveStock(buyRedis, keyPrefix, request, policy, layouts),
  };
}
