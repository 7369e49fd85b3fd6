// A hot product's stock split over several shards (docs/ARCHITECTURE.md section 10): the
// layout each API process knows, and the tail of the sale, when a buyer's home shard is out of
// units while others may still have some.
import { randomUUID } from 'node:crypto';
import type { Redis } from '../redis/client.js';
import type { ProductKeys } from '../redis/keys.js';
import {
  productTransfers,
  readLayout,
  settleTransfer,
  singleShard,
  type ProductLayout,
} from '../redis/sale-state.js';
import type { Durability } from '../redis/resp.js';
import { lendUnits, receiveUnits, type LendReply } from '../redis/scripts.js';

/**
 * The layouts of the sharded products this process has met. A product is assumed unsharded
 * (no lookup, the hot path of K = 1) until its buy script answers that it has another shard
 * count; so only products an operator seeded with shards are ever held here.
 */
export class StockLayouts {
  private readonly sharded = new Map<string, ProductLayout>();
  private readonly checked = new Map<string, { at: number; sharded: boolean }>();

  constructor(
    readonly redis: Redis,
    readonly prefix: string,
  ) {}

  known(productId: string): ProductLayout | undefined {
    return this.sharded.get(productId);
  }

  /**
   * Whether a product is sharded, for sync mode (which never runs the buy script that would
   * say so): answers from the last read, at most `maxAgeMs` old.
   */
  async isSharded(productId: string, maxAgeMs = 1_000): Promise<boolean> {
    const now = Date.now();
    const seen = this.checked.get(productId);
    if (seen !== undefined && now - seen.at < maxAgeMs) return seen.sharded;
    // Bounded: a client can name any product id.
    if (this.checked.size >= 10_000) this.checked.clear();
    const sharded = (await this.refresh(productId)).shards.length > 1;
    this.checked.set(productId, { at: now, sharded });
    return sharded;
  }

  /** The product's layout, read again at most every `maxAgeMs` (public reads: stock, SSE). */
  async current(productId: string, maxAgeMs = 1_000): Promise<ProductLayout> {
    await this.isSharded(productId, maxAgeMs);
    return this.sharded.get(productId) ?? singleShard(this.prefix, productId);
  }

  async refresh(productId: string): Promise<ProductLayout> {
    const layout = await readLayout(this.redis, this.prefix, productId);
    if (layout.shards.length > 1) this.sharded.set(productId, layout);
    else this.sharded.delete(productId);
    return layout;
  }
}

/** Moved: units may now be on the home shard (buy again). Short: the product had fewer than needed. */
export type BorrowOutcome = { kind: 'moved' } | { kind: 'short'; units: number };

/**
 * Brings to `home`, which the buy script found with `homeUnits`, the units it lacks for `qty`
 * from the other shards, in turn. When none has any, it proves it before the buyer is told
 * so: a second read of every shard must find each one's `moves` counter unchanged, so no unit
 * was added anywhere between the two reads, and at the moment the first read ended the product
 * held only what that read saw (a double collect); and what it saw must be fewer than `qty`
 * (units may have reached the home shard since its buy script ran). A transfer left in
 * transit by a crash is completed on the way.
 *
 * With `durability` (`serve --durability replica`) each step of a move goes on only once a
 * replica has the step before: the receive once the lend is replicated (a failover of the
 * lender cannot give back units the destination already has), the settle once the receive is
 * (a failover of the destination cannot lose units the lender has forgotten). A step that no
 * replica acknowledges in time rejects with NOREPLICAS (503, nothing reserved for the buyer)
 * and leaves the move in transit, for the next borrower or `fsale reconcile` to complete:
 * receive is idempotent per transfer id and settle is an HDEL.
 */
export async function borrowUnits(
  redis: Redis,
  layout: ProductLayout,
  home: ProductKeys,
  qty: number,
  homeUnits: number,
  durability?: Durability,
): Promise<BorrowOutcome> {
  const need = qty - Math.max(0, homeUnits);
  const others = layout.shards.slice(home.shard + 1).concat(layout.shards.slice(0, home.shard));
  const first: LendReply[] = [await lendUnits(redis, home, home, '', 0)];
  let moved = 0;
  for (const from of others) {
    const transferId = randomUUID();
    const reply = await lendUnits(redis, from, home, transferId, need - moved, durability);
    if (reply.lent > 0) {
      await receiveUnits(redis, home, transferId, reply.lent, durability);
      await settleTransfer(redis, from, transferId, durability);
      moved += reply.lent;
      if (moved >= need) break;
    }
    first.push(reply);
  }
  if (moved > 0) return { kind: 'moved' };
  if (first.some((reply) => reply.inTransit > 0)) {
    await completeTransfers(redis, layout, durability);
    return { kind: 'moved' };
  }
  const second = await Promise.all(
    [home, ...others].map((shard) => lendUnits(redis, shard, shard, '', 0)),
  );
  const unchanged = second.every(
    (reply, i) => reply.moves === first[i]?.moves && reply.inTransit === 0,
  );
  const units = first.reduce((sum, reply) => sum + Math.max(0, reply.left), 0);
  if (!unchanged || units >= qty) return { kind: 'moved' };
  return { kind: 'short', units };
}

/**
 * Completes every transfer still in transit (its lender crashed, or is still at it: receiving
 * is idempotent per transfer, so finishing another's move is safe). Returns how many. With
 * `durability`, as in borrowUnits: the settle only once the receive is on a replica.
 */
export async function completeTransfers(
  redis: Redis,
  layout: ProductLayout,
  durability?: Durability,
): Promise<number> {
  const transfers = await productTransfers(redis, layout);
  for (const { id, units, from, destination } of transfers) {
    // A destination outside the layout cannot be: seed --reset deletes every shard's keys.
    if (destination !== undefined) await receiveUnits(redis, destination, id, units, durability);
    await settleTransfer(redis, from, id, durability);
  }
  return transfers.length;
}
