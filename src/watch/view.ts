// What `fsale watch` shows, as pure functions of a snapshot (tested without a terminal).

export interface WatchSnapshot {
  productId: string;
  name: string | undefined;
  total: number | undefined;
  remaining: number | undefined;
  /** Units taken per second over the last interval: the falls between stock events. */
  acceptedPerSecond: number;
  /** Units put back per second (declines, expired reservations): the rises between events. */
  releasedPerSecond: number;
  /** Orders confirmed (paid) per second over the last interval. */
  confirmedPerSecond: number;
  paid: number;
  failed: number;
  pending: number;
  needsReconciliation: number;
  /** When the stock was first seen at zero (ms since epoch). */
  soldOutAt: number | undefined;
  /** When the first unit was seen taken (ms since epoch). */
  firstSaleAt: number | undefined;
  connected: boolean;
  at: number;
  /** The stock at each of the last snapshots, oldest first (at most STOCK_HISTORY). */
  history: number[];
}

/** How many snapshots the stock sparkline shows. */
export const STOCK_HISTORY = 30;

const BLOCKS = ' ▁▂▃▄▅▆▇█';
const ASCII_LEVELS = '_.:-=+*#';

/**
 * The stock over time, one character per snapshot, from empty (0 left) to full (all left):
 * unicode blocks on a terminal, ASCII elsewhere. Any stock above 0 shows above the floor.
 */
export function sparkline(values: readonly number[], total: number, rich: boolean): string {
  const levels = rich ? BLOCKS : ASCII_LEVELS;
  const top = levels.length - 1;
  return values
    .map((value) => {
      const ratio = total <= 0 ? 0 : Math.min(1, Math.max(0, value / total));
      return levels[ratio === 0 ? 0 : Math.max(1, Math.round(ratio * top))] ?? '';
    })
    .join('');
}

export function stockBar(remaining: number, total: number, width = 30): string {
  const ratio = total <= 0 ? 0 : Math.min(1, Math.max(0, remaining / total));
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function soldOutText(s: WatchSnapshot): string {
  if (s.soldOutAt === undefined) return 'not sold out';
  const after =
    s.firstSaleAt === undefined
      ? ''
      : ` (${((s.soldOutAt - s.firstSaleAt) / 1000).toFixed(2)} s after the first sale seen)`;
  return `sold out at ${new Date(s.soldOutAt).toISOString().slice(11, 23)}${after}`;
}

/** One line, plain ASCII (output that is not a terminal, or NO_COLOR; one per interval). */
export function renderLine(s: WatchSnapshot): string {
  const stock = s.remaining === undefined ? '?' : `${s.remaining}/${s.total ?? '?'}`;
  return (
    `${new Date(s.at).toISOString()} ${s.productId} remaining ${stock} ` +
    `accepted/s ${s.acceptedPerSecond.toFixed(0)} released/s ${s.releasedPerSecond.toFixed(0)} ` +
    `confirmed/s ${s.confirmedPerSecond.toFixed(0)} ` +
    `paid ${s.paid} failed ${s.failed} pending ${s.pending} reconciling ${s.needsReconciliation}` +
    `${s.connected ? '' : ' [reconnecting]'} ${soldOutText(s)}` +
    (s.history.length === 0 ? '' : ` stock [${sparkline(s.history, s.total ?? 0, false)}]`)
  );
}

/** The multi-line view redrawn in place on a TTY. */
export function renderPanel(s: WatchSnapshot): string[] {
  const total = s.total ?? 0;
  const remaining = s.remaining ?? 0;
  return [
    `fsale watch  ${s.name ?? s.productId} (${s.productId})${s.connected ? '' : '   [reconnecting...]'}`,
    `stock     ${stockBar(remaining, total)} ${s.remaining ?? '?'} / ${s.total ?? '?'} left`,
    `over time ${sparkline(s.history, total, true)}`,
    `accepted  ${s.acceptedPerSecond.toFixed(0).padStart(7)} /s    released ${s.releasedPerSecond.toFixed(0).padStart(7)} /s    confirmed ${s.confirmedPerSecond.toFixed(0).padStart(7)} /s`,
    `orders    paid ${s.paid}  failed ${s.failed}  pending ${s.pending}  reconciling ${s.needsReconciliation}`,
    soldOutText(s),
  ];
}

/** The JSON line printed with --json. */
export function toJsonLine(s: WatchSnapshot): string {
  return JSON.stringify({
    at: new Date(s.at).toISOString(),
    productId: s.productId,
    remaining: s.remaining ?? null,
    total: s.total ?? null,
    acceptedPerSecond: s.acceptedPerSecond,
    releasedPerSecond: s.releasedPerSecond,
    confirmedPerSecond: s.confirmedPerSecond,
    paid: s.paid,
    failed: s.failed,
    pending: s.pending,
    needsReconciliation: s.needsReconciliation,
    soldOutAt: s.soldOutAt === undefined ? null : new Date(s.soldOutAt).toISOString(),
    connected: s.connected,
  });
}
