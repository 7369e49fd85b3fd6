// What GET /products/:id reads from PostgreSQL (the product row and its orders counted by
// status), cached per process. The route is public and the API's pool is small (5 connections
// in queue mode, shared with GET /order/:id): one query per read would let a crowd refreshing
// a product page queue every order lookup behind a GROUP BY. So each product is read at most
// once per `maxAgeMs` however many ask (shared-reads.ts), and at most `maxConcurrentQueries`
// such reads run at once, leaving the rest of the pool to the owners' lookups. Live stock is
// not cached: it comes from Redis per read.
//
// Only products seeded in Redis are read from PostgreSQL (seed writes PostgreSQL first, then
// Redis; a buy of a product missing there is refused as unknown too). A made-up id costs one
// Redis EXISTS and nothing else: it never waits for a query slot, so a flood of them cannot
// fill the queue ahead of a real product's refresh, and it is not remembered, so it cannot
// push a real product out of the cache. While a refresh fails (PostgreSQL down, the queue
// full), a product is served as last read.
import { ProblemError } from './problems.js';
import { SharedReads } from './shared-reads.js';
import type { Pool } from '../db/pool.js';
import { readProductSnapshot, type ProductSnapshot } from '../db/products.js';

export interface ProductSnapshotOptions {
  maxAgeMs: number;
  maxConcurrentQueries: number;
  /** Reads waiting for a query slot beyond this are answered 503 instead of queueing. */
  maxWaiting: number;
  /** Products remembered; the least recently read go first. */
  maxEntries: number;
  now: () => number;
}

export const DEFAULT_PRODUCT_SNAPSHOTS: ProductSnapshotOptions = {
  maxAgeMs: 1_000,
  maxConcurrentQueries: 2,
  maxWaiting: 1_000,
  maxEntries: 10_000,
  now: () => performance.now(),
};

/** Whether the product is seeded (its sale hash is in Redis: isProductSeeded in sale-state.ts). */
export type IsSeeded = (productId: string) => Promise<boolean>;

export class ProductSnapshots {
  private readonly reads: SharedReads<string, ProductSnapshot | undefined>;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Queries sent to PostgreSQL, for tests and metrics. */
  queries = 0;

  constructor(
    private readonly pool: Pool,
    private readonly isSeeded: IsSeeded,
    private readonly options: ProductSnapshotOptions = DEFAULT_PRODUCT_SNAPSHOTS,
  ) {
    this.reads = new SharedReads((id) => this.fetch(id), options);
  }

  /** The product as of at most `maxAgeMs` ago, or undefined when there is no such product. */
  async get(id: string): Promise<ProductSnapshot | undefined> {
    if (!(await this.isSeeded(id))) return undefined;
    return this.reads.get(id);
  }

  private async fetch(id: string): Promise<ProductSnapshot | undefined> {
    await this.slot();
    try {
      this.queries += 1;
      return await readProductSnapshot(this.pool, id);
    } finally {
      // Hand the slot to the next waiting read, or give it back.
      const next = this.waiting.shift();
      if (next === undefined) this.running -= 1;
      else next();
    }
  }

  private async slot(): Promise<void> {
    if (this.running < this.options.maxConcurrentQueries) {
      this.running += 1;
      return;
    }
    if (this.waiting.length >= this.options.maxWaiting) {
      throw new ProblemError('overloaded', undefined, 1);
    }
    // The finishing query hands its slot over (running stays counted).
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
}
