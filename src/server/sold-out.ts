import type { SaleFeed } from './sale-feed.js';

/**
 * Products this process has seen sold out, so new buys are refused without running the buy
 * script. A stock change above zero (a release, a re-seed) re-opens the product as soon as its
 * publish arrives; entries also expire after `ttlMs` as a safety net for a missed message, and
 * all are dropped when the subscription had to reconnect.
 */
export class SoldOutCache {
  private readonly since = new Map<string, number>();

  constructor(
    private readonly feed: SaleFeed,
    private readonly ttlMs = 5_000,
  ) {
    feed.on('stock', (productId, remaining) => {
      if (remaining > 0) this.since.delete(productId);
    });
    feed.on('resync', () => this.since.clear());
  }

  /**
   * A product whose changes this process does not hear yet (seeded since the feed last
   * looked) is marked once the feed listens to it: a release in between could not reach the
   * cache, and is covered by the entries' expiry like any missed message.
   */
  markSoldOut(productId: string, now = Date.now()): void {
    if (this.feed.hears(productId)) this.since.set(productId, now);
    else
      void this.feed
        .watch(productId)
        .then(() => this.since.set(productId, now))
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
