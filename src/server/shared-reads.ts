// A value the public routes read from PostgreSQL, cached per process: each key is read at most
// once per `maxAgeMs` however many ask, the askers of one period share the one read, and a
// read still running is shared past its period too, so at most one read per key is ever in
// flight. A crowd on a public route then costs PostgreSQL one query a second, not one per
// request. GET /products/:id (product-snapshots.ts) and the public GET /readyz use it.
//
// A failed read is remembered for its period like a value (a crowd does not retry it once per
// request); while a key's reads fail, askers get the last value read for it, when there is one.

export interface SharedReadOptions {
  maxAgeMs: number;
  /** Keys remembered; the least recently read go first. */
  maxEntries: number;
  now: () => number;
}

interface Entry<V> {
  startedAt: number;
  running: boolean;
  value: Promise<V>;
  /** The last value read for this key, served while a read fails. */
  good: { value: V } | undefined;
}

export class SharedReads<K, V> {
  private readonly entries = new Map<K, Entry<V>>();

  constructor(
    private readonly read: (key: K) => Promise<V>,
    private readonly options: SharedReadOptions,
  ) {}

  get(key: K): Promise<V> {
    const now = this.options.now();
    const cached = this.entries.get(key);
    if (cached !== undefined && (cached.running || now - cached.startedAt < this.options.maxAgeMs))
      return cached.value;
    const entry = this.start(key, now, cached?.good);
    // Re-inserted, so Map order is least recently read first for the eviction below.
    this.entries.delete(key);
    this.entries.set(key, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.options.maxEntries) break;
      this.entries.delete(oldest);
    }
    return entry.value;
  }

  private start(key: K, now: number, good: Entry<V>['good']): Entry<V> {
    const state = { startedAt: now, running: true, good };
    const value = this.read(key).then(
      (read) => {
        state.running = false;
        state.good = { value: read };
        return read;
      },
      (error: unknown) => {
        state.running = false;
        if (state.good !== undefined) return state.good.value;
        throw error;
      },
    );
    return Object.assign(state, { value });
  }
}
