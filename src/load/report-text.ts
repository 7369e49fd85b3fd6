import { renderTable, type OutputStyle } from '../cli/colors.js';
import type { FloodProgress } from './flood.js';
import { formatMs, type LatencyStats } from './latency.js';
import { OUTCOME_CLASSES, OUTCOME_LABELS } from './outcomes.js';
import type { FloodSummary, Verdict } from './summary.js';

// The terminal side of a flood: one progress line a second, and the summary tables.

const SHORT: Record<string, string> = {
  accepted: 'ok',
  sold_out: '409so',
  conflict: '409',
  rate_limited: '429',
  overloaded: '503',
  outcome_unknown: '503?',
  client_error: '4xx',
  server_error: '5xx',
  network_error: 'err',
  other: 'oth',
};

export function renderProgress(p: FloodProgress): string {
  const time = `${p.elapsedSeconds.toFixed(0).padStart(3)}s`;
  if (p.phase === 'follow')
    return `${time} following orders: ${p.following ?? 0} not settled yet (${p.orders} accepted)`;
  if (p.phase === 'audit') return `${time} auditing invariants...`;
  const rate =
    p.targetRate === null
      ? `${p.sentLastSecond}/s`
      : `${p.sentLastSecond}/s (target ${Math.round(p.targetRate)}/s)`;
  const counts = OUTCOME_CLASSES.filter((c) => p.counts[c] > 0 || c === 'accepted')
    .map((c) => `${SHORT[c] ?? c} ${p.counts[c]}`)
    .join(' ');
  return `${time} sent ${p.sent} ${rate} in-flight ${p.inFlight} | ${counts} | p99 ${formatMs(p.p99LastSecond)}`;
}

const pct = (n: number, total: number) => (total > 0 ? `${((100 * n) / total).toFixed(1)}%` : '-');

function latencyCells(stats: LatencyStats | null): string[] {
  if (stats === null) return ['-', '-', '-', '-', '-'];
  return [stats.p50, stats.p90, stats.p99, stats.p999, stats.max].map((ms) => formatMs(ms));
}

/** The summary printed at the end of a flood: tables on a terminal, plain columns elsewhere. */
export function renderSummary(s: FloodSummary, style: OutputStyle): string {
  const out: string[] = [];
  // Said first, before any figure is read as the server's.
  if (s.generator.limited) out.push(`${GENERATOR_LIMITED} ${s.generator.reasons.join('; ')}`);
  const load =
    s.load.model === 'open'
      ? `open model, ${s.load.stages !== null ? `stages ${s.load.stages.map((x) => `${x.durationSeconds}s:${x.target}`).join(',')}` : `${s.load.rate ?? 0} arrivals/s`}${s.load.rampSeconds > 0 ? `, ramp ${s.load.rampSeconds} s` : ''}${s.load.spikes.map((x) => `, spike ${x.factor}x@${x.atSeconds}s:${x.forSeconds}s`).join('')}`
      : `closed model, ${s.load.connections ?? 0} connections`;
  out.push(
    `fsale flood: ${s.target.url} product ${s.target.productId} — ${load}, ${s.load.users} users`,
  );

  const outcomes: string[][] = [];
  for (const c of OUTCOME_CLASSES) {
    const o = s.outcomes[c];
    if (o.count === 0 && c !== 'accepted') continue;
    outcomes.push([
      OUTCOME_LABELS[c],
      String(o.count),
      pct(o.count, s.requests.sent),
      ...latencyCells(o.latencyMs),
    ]);
  }
  outcomes.push([
    'all answered',
    String(s.requests.answered),
    pct(s.requests.answered, s.requests.sent),
    ...latencyCells(s.latencyMs),
  ]);
  out.push(
    renderTable(style, outcomes, [
      'outcome',
      'count',
      'share',
      'p50',
      'p90',
      'p99',
      'p99.9',
      'max',
    ]),
  );
  out.push(
    s.latencyOrigin === 'intended_send_time'
      ? "latency is measured from each request's intended send time (no coordinated omission)"
      : 'latency is measured from the write (closed model: a stall delays the next request instead of showing up here)',
  );

  const facts: string[][] = [];
  const row = (name: string, value: string) => facts.push([name, value]);
  row(
    'rate',
    `${s.rate.achieved}/s achieved${s.rate.target === null ? '' : ` of ${s.rate.target}/s targeted`}, ${s.rate.answeredPerSecond} answers/s`,
  );
  row(
    'requests',
    `${s.requests.sent} sent (${s.requests.first} first, ${s.requests.retries} retries, ${s.requests.doubleClicks} double clicks)`,
  );
  row('orders accepted', String(s.orders.accepted));
  row(
    'idempotency',
    `${s.idempotency.replays} replays, ${s.idempotency.secondReservations} second reservations`,
  );
  row(
    'time to sell out',
    s.sale.timeToSellOutMs === null
      ? 'not sold out'
      : `${formatMs(s.sale.timeToSellOutMs)} after the first 202 (seen in ${s.sale.soldOutSource === 'stock_stream' ? 'the stock stream' : 'a 409 sold_out'})`,
  );
  if (s.follow !== null) {
    const f = s.follow;
    row(
      'followed orders',
      `${f.followed}: ${f.paid} paid, ${f.paymentFailed} payment failed, ${f.needsReconciliation} needs reconciliation, ${f.unsettled} not settled (${f.viaStream} over SSE, ${f.viaPolling} polled)`,
    );
    row(
      'time to confirm',
      f.timeToConfirmMs === null
        ? '-'
        : `p50 ${formatMs(f.timeToConfirmMs.p50)}, p99 ${formatMs(f.timeToConfirmMs.p99)}, max ${formatMs(f.timeToConfirmMs.max)}`,
    );
    row('fulfilled', f.fulfilledPerSecond === null ? '-' : `${f.fulfilledPerSecond} orders/s`);
  }
  row(
    'generator',
    s.generator.limited
      ? `LIMITED: ${s.generator.reasons.join('; ')}`
      : `kept up (send lag p99 ${formatMs(s.generator.sendLagMs?.p99)}, event loop p99 ${formatMs(s.generator.eventLoopDelayMs?.p99)})`,
  );
  if (s.audit !== null) {
    const failed = s.audit.checks.filter((c) => !c.ok);
    row(
      'audit',
      !s.audit.ran
        ? `could not run: ${s.audit.error ?? ''}`
        : s.audit.ok
          ? `all ${s.audit.checks.length} checks hold`
          : `${failed.length} of ${s.audit.checks.length} checks FAIL: ${failed.map((c) => `${c.name} (expected ${c.expected}, got ${c.actual})`).join('; ')}`,
    );
  }
  out.push(renderTable(style, facts));

  if (s.thresholds.length > 0) {
    const gates = s.thresholds.map((t) => [
      t.expression,
      t.actual === null ? 'not measured' : String(t.actual),
      t.ok ? 'PASS' : 'FAIL',
    ]);
    out.push(renderTable(style, gates, ['threshold', 'actual', 'result']));
  }
  out.push(verdictLine(s.verdict));
  return out.join('\n');
}

/** The first thing a report of a limited run says. */
export const GENERATOR_LIMITED =
  'INCONCLUSIVE: the load generator could not keep to its schedule, so the latencies and rates below include its own delay, not only the server’s.';

export function verdictLine(v: Verdict): string {
  if (v.status === 'pass') return 'PASS';
  const label = v.status === 'inconclusive' ? 'INCONCLUSIVE' : 'FAIL';
  return `${label} (exit ${v.exitCode}): ${v.reasons.join('; ')}`;
}
