import { EventSource } from 'eventsource';
import { STOCK_HISTORY, type WatchSnapshot } from './view.js';

export interface WatchOptions {
  url: string;
  productId: string;
  intervalMs: number;
  onSnapshot: (snapshot: WatchSnapshot) => void;
  /** Connection news: lost, reconnecting with Last-Event-ID, reconnected. */
  onNotice: (message: string) => void;
  /** Called once the stock is seen at zero. */
  onSoldOut?: () => void;
}

interface ProductView {
  name: string;
  stockTotal: number;
  remaining: number;
  orders?: Partial<Record<'pending' | 'paid' | 'payment_failed' | 'needs_reconciliation', number>>;
}

export class ProductNotFoundError extends Error {}

/**
 * Follows one product: stock over SSE (the EventSource reconnects by itself and sends
 * Last-Event-ID), order counts from GET /products/:id once per interval. Returns a stop function.
 */
export async function watchProduct(options: WatchOptions): Promise<() => void> {
  const base = options.url.replace(/\/$/, '');
  const productUrl = `${base}/products/${encodeURIComponent(options.productId)}`;
  const first = await fetch(productUrl);
  if (first.status === 404)
    throw new ProductNotFoundError(`unknown product ${options.productId} at ${base}`);
  if (!first.ok) throw new Error(`GET ${productUrl} answered ${first.status}`);
  let product = (await first.json()) as ProductView;

  const snapshot: WatchSnapshot = {
    productId: options.productId,
    name: product.name,
    total: product.stockTotal,
    remaining: product.remaining,
    acceptedPerSecond: 0,
    releasedPerSecond: 0,
    confirmedPerSecond: 0,
    paid: product.orders?.paid ?? 0,
    failed: product.orders?.payment_failed ?? 0,
    pending: product.orders?.pending ?? 0,
    needsReconciliation: product.orders?.needs_reconciliation ?? 0,
    soldOutAt: undefined,
    firstSaleAt: undefined,
    connected: false,
    at: Date.now(),
    history: [],
  };
  let previous = { at: Date.now(), paid: snapshot.paid };
  // Units taken and put back since the last snapshot, from the stock events one by one.
  let moved = { accepted: 0, released: 0 };
  // The server's counts of accepts and releases at this connection's last event (they are
  // its process's own: a reconnect may reach another process, so each connection starts anew).
  let counted: { accepted: number; released: number } | undefined;
  let lostAt: number | undefined;

  const source = new EventSource(`${base}/stock/${encodeURIComponent(options.productId)}/stream`);
  source.addEventListener('open', () => {
    if (lostAt !== undefined)
      options.onNotice(`reconnected after ${((Date.now() - lostAt) / 1000).toFixed(1)} s`);
    lostAt = undefined;
    counted = undefined;
    snapshot.connected = true;
  });
  source.addEventListener('error', () => {
    if (lostAt === undefined) {
      lostAt = Date.now();
      snapshot.connected = false;
      options.onNotice(
        `stream lost; reconnecting with Last-Event-ID ${source.readyState === EventSource.CLOSED ? '(closed)' : (snapshot.remaining ?? 'none')}`,
      );
    }
  });
  source.addEventListener('stock', (event) => {
    // MessageEvent is a DOM type this Node-only build does not include; the payload is a string.
    const data = JSON.parse((event as unknown as { data: string }).data) as {
      remaining: number;
      accepted?: number;
      released?: number;
      at: number;
    };
    if (typeof data.accepted === 'number' && typeof data.released === 'number') {
      const now = { accepted: data.accepted, released: data.released };
      if (counted !== undefined) moved = countedMoves(moved, counted, now);
      counted = now;
    } else {
      // A server that sends the level alone (before accepts were counted).
      moved = stockMoves(moved, snapshot.remaining, data.remaining);
    }
    if (snapshot.remaining !== undefined && data.remaining < snapshot.remaining)
      snapshot.firstSaleAt ??= Date.now();
    snapshot.remaining = data.remaining;
    if (data.remaining === 0 && snapshot.soldOutAt === undefined) {
      snapshot.soldOutAt = data.at;
      options.onSoldOut?.();
    } else if (data.remaining > 0) {
      // Units came back (a decline released its reservation, a re-seed): on sale again.
      snapshot.soldOutAt = undefined;
    }
  });

  const timer = setInterval(() => {
    void (async () => {
      try {
        const response = await fetch(productUrl);
        if (response.ok) product = (await response.json()) as ProductView;
      } catch {
        // The API is unreachable: keep showing the last counts, the SSE notice says why.
      }
      const now = Date.now();
      const seconds = Math.max(0.001, (now - previous.at) / 1000);
      const remaining = snapshot.remaining ?? product.remaining;
      snapshot.paid = product.orders?.paid ?? snapshot.paid;
      snapshot.failed = product.orders?.payment_failed ?? snapshot.failed;
      snapshot.pending = product.orders?.pending ?? snapshot.pending;
      snapshot.needsReconciliation =
        product.orders?.needs_reconciliation ?? snapshot.needsReconciliation;
      snapshot.total = product.stockTotal;
      snapshot.acceptedPerSecond = moved.accepted / seconds;
      snapshot.releasedPerSecond = moved.released / seconds;
      snapshot.confirmedPerSecond = Math.max(0, (snapshot.paid - previous.paid) / seconds);
      snapshot.at = now;
      snapshot.history = [...snapshot.history, remaining].slice(-STOCK_HISTORY);
      previous = { at: now, paid: snapshot.paid };
      moved = { accepted: 0, released: 0 };
      options.onSnapshot({ ...snapshot, history: [...snapshot.history] });
    })();
  }, options.intervalMs);

  return () => {
    clearInterval(timer);
    source.close();
  };
}

/**
 * What the server's accept and release counts say happened since its previous event: every
 * accept and every release, even when both fall in one coalesced interval.
 */
export function countedMoves(
  moved: { accepted: number; released: number },
  before: { accepted: number; released: number },
  after: { accepted: number; released: number },
): { accepted: number; released: number } {
  return {
    accepted: moved.accepted + Math.max(0, after.accepted - before.accepted),
    released: moved.released + Math.max(0, after.released - before.released),
  };
}

/**
 * For a server whose events carry the level alone: the stream carries the stock level,
 * not the buys, so a fall is units accepted and a rise is units released. A server coalesces
 * the events of one interval into the last (src/server/sse-hub.ts), so a buy and a release
 * inside one interval cancel out; across intervals neither hides the other.
 */
export function stockMoves(
  moved: { accepted: number; released: number },
  before: number | undefined,
  after: number,
): { accepted: number; released: number } {
  if (before === undefined || after === before) return moved;
  return after < before
    ? { ...moved, accepted: moved.accepted + (before - after) }
    : { ...moved, released: moved.released + (after - before) };
}
