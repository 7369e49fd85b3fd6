// The order as the API appends it to a product's Redis stream and the order worker reads it.
// The buy script (src/redis/lua/buy-7.lua) writes exactly these fields.

export interface OrderEntry {
  /** The primary key in PostgreSQL: keyed from the buy (src/domain/order-id.ts), or a UUIDv7. */
  id: string;
  productId: string;
  userId: string;
  qty: number;
  idempotencyKey: string;
  /** When the API accepted it (ms since epoch). */
  acceptedAt: number;
}

/** Stream field names, in the order the buy script writes them. */
export const ORDER_ENTRY_FIELDS = ['id', 'user', 'qty', 'key', 'at'] as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Parses the flat [field, value, ...] list of a stream entry. Returns undefined for an entry
 * that cannot be an order (a poison message), which the worker dead-letters.
 */
export function parseOrderEntry(
  productId: string,
  fields: readonly string[],
): OrderEntry | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] ?? '', fields[i + 1] ?? '');
  const id = map.get('id');
  const userId = map.get('user');
  const qty = Number(map.get('qty'));
  const idempotencyKey = map.get('key');
  const acceptedAt = Number(map.get('at'));
  if (
    id === undefined ||
    !UUID.test(id) ||
    userId === undefined ||
    userId === '' ||
    !Number.isSafeInteger(qty) ||
    qty < 1 ||
    idempotencyKey === undefined ||
    idempotencyKey === '' ||
    !Number.isSafeInteger(acceptedAt) ||
    acceptedAt <= 0
  ) {
    return undefined;
  }
  return { id, productId, userId, qty, idempotencyKey, acceptedAt };
}

/**
 * The stream entries whose units are still reserved for an order PostgreSQL does not have
 * yet: neither persisted nor superseded (an order superseded by the earlier order holding its
 * idempotency key was released by the worker). The audit and `--rebuild-redis` count these.
 */
export function unpersistedEntries<T extends { order: OrderEntry }>(
  streamed: readonly T[],
  persisted: ReadonlySet<string>,
  superseded: ReadonlySet<string>,
): T[] {
  return streamed.filter((s) => !persisted.has(s.order.id) && !superseded.has(s.order.id));
}
