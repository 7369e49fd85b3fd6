// The provider's record of every final answer per key (a charge, a decline, or a void that
// makes any later charge with the key refused): what `GET /charges/:key` answers and what
// reconciliation and the audit trust. In memory: the gateway is a mock, and a restart
// forgets everything (like a provider whose test account was wiped).

import type { DeclineCode } from './behaviour.js';

export interface ChargeRequest {
  orderId: string;
  amountCents: number;
}

/**
 * `voided`: the key was cancelled before any charge with it was made (POST
 * /charges/:key/void); every later charge with it is refused, so no money can move under it.
 */
export type ChargeStatus = 'succeeded' | 'declined' | 'voided';

export interface LedgerEntry extends ChargeRequest {
  /** Position in the ledger, 1-based; the cursor of `GET /charges?after=`. */
  seq: number;
  key: string;
  status: ChargeStatus;
  /** Only a succeeded charge has an id: a decline moved no money. */
  chargeId?: string;
  declineCode?: DeclineCode;
  /** When the provider made the answer final (ISO 8601). */
  settledAt: string;
  /** False for a charge taken during a hang: the caller never heard about it. */
  answered: boolean;
}

export function sameRequest(a: ChargeRequest, b: ChargeRequest): boolean {
  return a.orderId === b.orderId && a.amountCents === b.amountCents;
}

export class Ledger {
  readonly #entries: LedgerEntry[] = [];
  readonly #byKey = new Map<string, LedgerEntry>();

  get size(): number {
    return this.#entries.length;
  }

  get(key: string): LedgerEntry | undefined {
    return this.#byKey.get(key);
  }

  /** Records a final answer; a key is recorded at most once (the caller checked). */
  record(entry: Omit<LedgerEntry, 'seq' | 'settledAt'>): LedgerEntry {
    if (this.#byKey.has(entry.key)) {
      // Unreachable by construction (one draw in flight per key); refusing here keeps a bug
      // from ever showing up as a double charge.
      throw new Error(`ledger already has key ${JSON.stringify(entry.key)}`);
    }
    const recorded: LedgerEntry = {
      ...entry,
      seq: this.#entries.length + 1,
      settledAt: new Date().toISOString(),
    };
    this.#entries.push(recorded);
    this.#byKey.set(entry.key, recorded);
    return recorded;
  }

  /** Up to `limit` entries after cursor `after` (0 = from the start), in the order recorded. */
  page(after: number, limit: number): { entries: LedgerEntry[]; next: number | undefined } {
    const entries = this.#entries.slice(after, after + limit);
    const last = entries.at(-1);
    const next = last !== undefined && last.seq < this.#entries.length ? last.seq : undefined;
    return { entries, next };
  }
}
