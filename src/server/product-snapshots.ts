// What GET /products/:id reads from PostgreSQL (the product row and its orders counted by
// status), cached per process. The route is public and the API's pool is small (5 connections
// in queue mode, shared with GET /order/:id): one query per read would let a crowd refreshing
// a product page queue every order lookup behind a GROUP BY. So each product is read at most
// once per `maxAgeMs` however many ask (concurrent readers share one query), and at most
// `maxConcurrentQueries` such reads run at once, whatever ids are asked for, leaving the rest
// of the pool to the owners' lookups. Live stock is not cached: it comes from Redis per read.
import { ProblemError } from './problems.js';
import type { Pool } from '../db/pool.js';
import { readProductSnapshot, type ProductSnapshot } from '../db/products.js';

export interface ProductSnapshotOptions {
  maxAgeMs: number;
  maxConcurrentQueries: number;
  /** Reads waiting for a query slot beyond this are answered 503 instead of queueing. */
  maxWaiting: number;
  /** Products (known or not) remembered; the oldest go first. */
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

interface Entry {
  fetchedAt: number;
  snapshot: Promise<ProductSnapshot | undefined>;
}

export class ProductSnapshots {
  private readonly entries = new Map<string, Entry>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Queries sent to PostgreSQL, for tests and metrics. */
  queries = 0;

  constructor(
    private readonly pool: Pool,
    private readonly options: ProductSnapshotOptions = DEFAULT_PRODUCT_SNAPSHOTS,
  ) {}

  /** The product as of at most `maxAgeMs` ago, or undefined when there is no such product. */
  get(id: string): Promise<ProductSnapshot | undefined> {
    const now = this.options.now();
    const cached = this.entries.get(id);
    if (cached !== undefined && now - cached.fetchedAt < this.options.maxAgeMs) {
      return cached.snapshot;
    }
    const entry: Entry = { fetchedAt: now, snapshot: this.fetch(id) };
    // Re-inserted, so Map order is oldest-fetched first for the eviction below.
    this.entries.delete(id);
    this.entries.set(id, entry);
    // A failure is not remembered: the next read asks again (through the same slots).
    entry.snapshot.catch(() => {
      if (this.entries.get(id) === entry) this.entries.delete(id);
    });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.options.maxEntries) break;
      this.entries.delete(oldest);
    }
    return entry.snapshot;
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
