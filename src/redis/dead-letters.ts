// The format of a product's dead-letter stream: stream entries the order worker could not
// persist, kept with everything needed to investigate or replay them. `fsale audit` reports
// every entry here (each one is an accepted order that is not in PostgreSQL).

export const DeadLetterReason = {
  /** The entry is not an order (parseOrderEntry refused it); retrying cannot fix it. */
  Unparseable: 'unparseable',
  /** The entry was removed from the stream (XDEL) while still unacknowledged. */
  Deleted: 'deleted',
  /**
   * Written by earlier versions, which dead-lettered an entry for its delivery count alone
   * (read back by the audit); an entry is now dead-lettered only for what is wrong with it.
   */
  MaxDeliveries: 'max_deliveries',
  /** PostgreSQL's stock guard refused it: persisting it would make `remaining` negative. */
  StockGuard: 'stock_guard',
  /**
   * Another order already holds this (product, user, idempotency key) and no buy reserved this
   * entry (an order the buy script accepted again under a lost record is superseded instead).
   */
  IdempotencyConflict: 'idempotency_conflict',
  /** PostgreSQL refused the row for another data reason (unknown product, value out of range). */
  Rejected: 'rejected',
} as const;

export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

export interface DeadLetter {
  /** Id of the entry in the product's order stream. */
  origin: string;
  reason: DeadLetterReason;
  /** Human-readable explanation (the PostgreSQL error, the holder of the key, ...). */
  detail: string;
  /** Deliveries of the entry when it was dead-lettered. */
  deliveries: number;
  /** The consumer that dead-lettered it. */
  consumer: string;
  /** Milliseconds since the epoch. */
  at: number;
  /** The original [field, value, ...] list, or null when the entry had been deleted. */
  fields: string[] | null;
}

/** The flat [field, value, ...] list written with XADD to the dead-letter stream. */
export function deadLetterFields(letter: DeadLetter): string[] {
  // The original fields are carried as one JSON value so that no field of a poison entry can
  // collide with (or impersonate) the dead-letter metadata.
  return [
    'origin',
    letter.origin,
    'reason',
    letter.reason,
    'detail',
    letter.detail,
    'deliveries',
    String(letter.deliveries),
    'consumer',
    letter.consumer,
    'at',
    String(letter.at),
    'entry',
    JSON.stringify(letter.fields),
  ];
}

const REASONS: ReadonlySet<string> = new Set(Object.values(DeadLetterReason));

function isReason(value: string | undefined): value is DeadLetterReason {
  return value !== undefined && REASONS.has(value);
}

/** Reads back a dead-letter entry (for audit and tests); undefined if it is not one. */
export function parseDeadLetter(fields: readonly string[]): DeadLetter | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] ?? '', fields[i + 1] ?? '');
  const reason = map.get('reason');
  const origin = map.get('origin');
  const raw = map.get('entry');
  if (!isReason(reason) || origin === undefined || raw === undefined) return undefined;
  let original: unknown;
  try {
    original = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (
    original !== null &&
    !(Array.isArray(original) && original.every((item) => typeof item === 'string'))
  ) {
    return undefined;
  }
  return {
    origin,
    reason,
    detail: map.get('detail') ?? '',
    deliveries: Number(map.get('deliveries') ?? 0),
    consumer: map.get('consumer') ?? '',
    at: Number(map.get('at') ?? 0),
    fields: original,
  };
}
