import type { SaleFeed } from './sale-feed.js';

/**
 * Products this process has seen sold out, so new buys are refused without running the buy
 * script. A stock change above zero (a release, a re-seed) re-opens the product as soon as its
 * publish arrives; entries also expire after `ttlMs` as a safety net for a missed message, and
 * all are dropped when the subscription had to reconnect.
 */
export class SoldOutCache {
  private readonly since = new Map<string, number>();
  /** Per product, how many times this process heard it re-open (one entry per product heard). */
  private readonly reopened = new Map<string, number>();
  /** How many times the subscription reconnected (what was published meanwhile is lost). */
  private resyncs = 0;

  constructor(
    private readonly feed: SaleFeed,
    private readonly ttlMs = 5_000,
  ) {
    feed.on('stock', (productId, remaining) => {
      if (remaining <= 0) return;
      this.since.delete(productId);
      this.reopened.set(productId, (this.reopened.get(productId) ?? 0) + 1);
    });
    feed.on('resync', () => {
      this.since.clear();
      this.resyncs += 1;
    });
  }

  /**
   * What this process has heard of the product so far, taken before a buy is sent: the buy's
   * sold-out answer may be overtaken by a release whose publish arrives before the answer does.
   */
  ticket(productId: string): number {
    return (this.reopened.get(productId) ?? 0) + this.resyncs;
  }

  /**
   * Marks the product sold out from an answer of a buy sent at `ticket`, unless it was heard to
   * re-open (or the subscription reconnected) since: marking then would refuse buyers while a
   * unit is back. A product whose changes this process does not hear yet (seeded since the
   * feed last looked) is marked once the feed listens to it: a release in between could not
   * reach the cache, and is covered by the entries' expiry like any missed message.
   */
  markSoldOut(productId: string, ticket: number, now = Date.now()): void {
    const mark = () => {
      if (this.ticket(productId) === ticket) this.since.set(productId, now);
    };
    if (this.feed.hears(productId)) mark();
    else
      void this.feed
        .watch(productId)
        .then(mark)
        .catch(() => undefined);
  }

  isSoldOut(productId: string, now = Date.now()): boolean {
    const at = this.since.get(productId);
    if (at === undefined) return false;
    if (now - at > this.ttlMs) {
      this.since.delete(productId);
      return false;
    }
    return true;
  }
}
