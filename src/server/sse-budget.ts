// How many event streams one API process holds open. Every stream is a socket, and a socket
// is a file descriptor: a process at its descriptor limit cannot accept the next buy, reach
// Redis or PostgreSQL again after a reconnect, or read its own files. So the streams get a
// share of the limit, read at start, and the rest stays for buys and the process itself.
import { readFileSync } from 'node:fs';

export type StreamKind = 'stock' | 'order';

export interface StreamBudget {
  /** Open streams of this kind per process. */
  total: number;
  /** Open streams of this kind per owner: a client address (stock) or a user (order). */
  perOwner: number;
}

export type SseBudgets = Readonly<Record<StreamKind, StreamBudget>>;

/** Descriptor limit assumed when it cannot be read (the usual soft limit, so a cautious guess). */
export const FALLBACK_FD_LIMIT = 1024;

/**
 * The process's soft limit on open files (RLIMIT_NOFILE), from /proc/self/limits on Linux;
 * Node has no API for it. Elsewhere, or if unreadable, `FALLBACK_FD_LIMIT`.
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number {
  try {
    const line = readFileSync(limitsFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isSafeInteger(n) && n > 0 ? n : FALLBACK_FD_LIMIT;
  } catch {
    return FALLBACK_FD_LIMIT;
  }
}

/** Shares of the descriptor limit: half stays for buys, clients and the process itself. */
export const STOCK_STREAM_SHARE = 0.4;
export const ORDER_STREAM_SHARE = 0.1;
/** Ceilings whatever the limit: what bench/sse.ts measured one process serving well. */
export const MAX_STOCK_STREAMS = 20_000;
export const MAX_ORDER_STREAMS = 5_000;
/**
 * One address may hold this many stock streams: enough for a household or an office behind
 * one NAT with a few tabs each, far too few for one machine to fill the budget.
 */
export const DEFAULT_STOCK_STREAMS_PER_ADDRESS = 64;
/** One user follows a handful of orders (the per-user limit) from a tab or two. */
export const DEFAULT_ORDER_STREAMS_PER_USER = 8;

/** The default budgets for a process whose descriptor limit is `fdLimit`. */
export function sseBudgetsFor(fdLimit = openFileLimit()): SseBudgets {
  const stock = Math.max(1, Math.min(MAX_STOCK_STREAMS, Math.floor(fdLimit * STOCK_STREAM_SHARE)));
  const order = Math.max(1, Math.min(MAX_ORDER_STREAMS, Math.floor(fdLimit * ORDER_STREAM_SHARE)));
  return {
    stock: { total: stock, perOwner: Math.min(stock, DEFAULT_STOCK_STREAMS_PER_ADDRESS) },
    order: { total: order, perOwner: Math.min(order, DEFAULT_ORDER_STREAMS_PER_USER) },
  };
}
