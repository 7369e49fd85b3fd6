import type { FloodSummary } from './summary.js';

const n = (value: number) => value.toLocaleString('en-US');
const ms = (value: number | null | undefined) =>
  value === null || value === undefined ? 'n/a' : `${value.toFixed(1)} ms`;
const s = (valueMs: number | null | undefined) =>
  valueMs === null || valueMs === undefined ? 'n/a' : `${(valueMs / 1000).toFixed(2)} s`;

/** What `fsale demo` prints: the sale in plain words. */
export function renderDemoSummary(
  summary: FloodSummary,
  context: { stock: number; wallSeconds: number },
): string {
  const accepted = summary.orders.accepted;
  const follow = summary.follow;
  const audit = summary.audit;
  const soldOut = summary.outcomes.sold_out.count;
  const failedChecks = audit?.checks.filter((c) => !c.ok) ?? [];
  const lines = [
    '',
    `A flash sale of ${n(context.stock)} units`,
    `  tried to buy          ${n(summary.requests.first)} buyers (${n(summary.requests.sent)} requests at ${n(Math.round(summary.rate.achieved))}/s)`,
    `  got one               ${n(accepted)} orders accepted; ${n(soldOut)} told "sold out"`,
    `  sold out after        ${s(summary.sale.timeToSellOutMs)} from the first accepted buy`,
    `  ack latency           p50 ${ms(summary.outcomes.accepted.latencyMs?.p50)}, p99 ${ms(summary.outcomes.accepted.latencyMs?.p99)} (202 answers)`,
  ];
  if (follow !== null) {
    lines.push(
      `  time to confirm       p50 ${s(follow.timeToConfirmMs?.p50)}, p99 ${s(follow.timeToConfirmMs?.p99)} (click to payment confirmed)`,
      `  payments              ${n(follow.paid)} paid, ${n(follow.paymentFailed)} declined (units released and sold again)` +
        (follow.unsettled > 0 ? `, ${n(follow.unsettled)} still unsettled` : ''),
    );
  }
  lines.push(
    `  idempotency           ${n(summary.idempotency.secondReservations)} second reservations`,
    audit === null || !audit.ran
      ? '  invariants            not checked'
      : audit.ok
        ? `  invariants            OK: all ${audit.checks.length} checks hold (no oversell, nothing lost, one charge per order)`
        : `  invariants            FAILED: ${failedChecks.map((c) => `${c.name} (expected ${c.expected}, got ${c.actual})`).join('; ')}`,
    summary.generator.limited
      ? `  load generator        fell behind its schedule (this machine's cores are shared by every process; latencies include that wait): ${summary.generator.reasons[0] ?? ''}`
      : '  load generator        kept to its schedule',
    `  whole demo            ${context.wallSeconds.toFixed(1)} s`,
    '',
  );
  return lines.join('\n');
}
