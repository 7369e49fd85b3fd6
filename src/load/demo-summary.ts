import { OUTCOME_CLASSES, OUTCOME_LABELS } from './outcomes.js';
import { GENERATOR_LIMITED } from './report-text.js';
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
  // Every request in exactly one class, the rare ones included: a handful of 5xx or network
  // errors in a 20,000-buyer sale must show up as what they were.
  const answers = OUTCOME_CLASSES.filter((c) => summary.outcomes[c].count > 0)
    .map((c) => `${n(summary.outcomes[c].count)} ${OUTCOME_LABELS[c]}`)
    .join(', ');
  const lines = [
    '',
    ...(summary.generator.limited ? [GENERATOR_LIMITED, ''] : []),
    `A flash sale of ${n(context.stock)} units`,
    `  tried to buy          ${n(summary.requests.first)} buyers (${n(summary.requests.sent)} requests at ${n(Math.round(summary.rate.achieved))}/s)`,
    `  got one               ${n(accepted)} orders accepted; ${n(soldOut)} told "sold out"`,
    `  answers               ${answers === '' ? 'none' : answers}`,
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
      ? `  load generator        INCONCLUSIVE: fell behind its schedule (this machine's cores are shared by every process; latencies include that wait): ${summary.generator.reasons.join('; ')}`
      : `  load generator        kept to its schedule (send lag p99 ${ms(summary.generator.sendLagMs?.p99)}, ${summary.generator.cpuUsPerRequest ?? '-'} µs CPU per request)`,
    `  whole demo            ${context.wallSeconds.toFixed(1)} s`,
    '',
  );
  return lines.join('\n');
}

/** What the demo leaves to try: a stack of one's own, the product again, its storefront. */
export interface DemoNextSteps {
  product: string;
  /** The demo's `seed` of its product, as flags: puts back on sale the units it sold. */
  seedArgs: string[];
  /** Flags `up` needs for the same stack: its port, data directory, services. */
  upArgs: string[];
  /** The port `fsale up` listens on with `upArgs`. */
  port: number;
  /**
   * The demo ran on private servers it started: `fsale up` starts its own, on ports of their
   * own, which a seed from another terminal must be told.
   */
  privateServices: boolean;
  /** The flood report, absolute. */
  html: string | undefined;
}

/** A word as the shell reads it back: quoted when it holds anything but plain characters. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The demo's last lines: each step a command or address, and what it does under it. */
export function renderNextSteps(next: DemoNextSteps): string {
  const command = (words: string[]) => ['fsale', ...words].map(shellWord).join(' ');
  const origin = `http://127.0.0.1:${next.port}`;
  const steps: [string, string][] = [
    [
      command(['up', '--demo-auth', ...next.upArgs]),
      'the same stack, left running (Ctrl-C stops it)',
    ],
    [
      command(['seed', ...next.seedArgs]),
      next.privateServices
        ? 'in a second terminal, with REDIS_URL and DATABASE_URL set to the private servers `fsale up` started (it prints their URLs): puts back on sale the units the demo sold'
        : 'in a second terminal: puts back on sale the units the demo sold',
    ],
    [
      `${origin}/?product=${encodeURIComponent(next.product)}&user=you`,
      'its storefront, in a browser: buy one, and watch the order get paid',
    ],
    [
      command(['watch', '--product', next.product, '--url', origin]),
      'live stock, accepted/s and confirmed/s in the terminal',
    ],
    next.html === undefined
      ? [command(['demo', '--html', 'report.html']), 'the same sale, with charts in one HTML file']
      : [next.html, "this sale's charts, in a browser"],
  ];
  return ['', 'What to try next:', ...steps.map(([what, why]) => `  ${what}\n      ${why}`)].join(
    '\n',
  );
}
