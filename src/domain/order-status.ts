// Order statuses and the only transitions allowed between them. Every status change in the
// code is a guarded `UPDATE orders SET status = $to WHERE id = $1 AND status = $from`
// (`transitionOrder` in src/db/orders.ts, the statement's one home) checked against this
// table, so a stale worker can never overwrite a newer state.

export const OrderStatus = {
  /** Accepted by the API, in the Redis stream, not yet in PostgreSQL (never stored in PG). */
  Queued: 'queued',
  /** Persisted by the order worker; stock held; waiting for the payment worker. */
  Pending: 'pending',
  Paid: 'paid',
  /** Declined by the gateway; the reservation is released exactly once. */
  PaymentFailed: 'payment_failed',
  /** Outcome unknown (timeout, connection lost); stock stays held until reconcile settles it. */
  NeedsReconciliation: 'needs_reconciliation',
} as const;

export type OrderStatus = (typeof OrderStatus)[keyof typeof OrderStatus];
export type StoredOrderStatus = Exclude<OrderStatus, 'queued'>;

export const TRANSITIONS: Readonly<Record<StoredOrderStatus, readonly StoredOrderStatus[]>> = {
  pending: ['paid', 'payment_failed', 'needs_reconciliation'],
  needs_reconciliation: ['paid', 'payment_failed'],
  paid: [],
  payment_failed: [],
};

export const TERMINAL_STATUSES: readonly StoredOrderStatus[] = ['paid', 'payment_failed'];

/** Statuses whose stock is still held (counts against the product's stock). */
export const HOLDING_STATUSES: readonly StoredOrderStatus[] = [
  'pending',
  'paid',
  'needs_reconciliation',
];

export function canTransition(from: StoredOrderStatus, to: StoredOrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export class IllegalTransitionError extends Error {
  constructor(from: StoredOrderStatus, to: StoredOrderStatus) {
    super(`illegal order status transition ${from} -> ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

/** Throws unless `from -> to` is listed in TRANSITIONS. */
export function assertTransition(from: StoredOrderStatus, to: StoredOrderStatus): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}

/** The SSE event name announcing that an order reached a status. */
export const ORDER_EVENT_NAMES: Readonly<Record<OrderStatus, string>> = {
  queued: 'order_queued',
  pending: 'order_persisted',
  paid: 'order_confirmed',
  payment_failed: 'payment_failed',
  needs_reconciliation: 'needs_reconciliation',
};

/** An order status change, as published on the order events channel. */
export interface OrderEvent {
  orderId: string;
  userId: string;
  productId: string;
  status: OrderStatus;
  /** ms since epoch */
  at: number;
}

const STATUSES = new Set<string>(Object.values(OrderStatus));

export function parseOrderEvent(message: string): OrderEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const e = value as Record<string, unknown>;
  if (
    typeof e.orderId !== 'string' ||
    typeof e.userId !== 'string' ||
    typeof e.productId !== 'string' ||
    typeof e.status !== 'string' ||
    !STATUSES.has(e.status) ||
    typeof e.at !== 'number'
  ) {
    return undefined;
  }
  return e as unknown as OrderEvent;
}
