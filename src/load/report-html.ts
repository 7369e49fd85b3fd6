import { formatMs } from './latency.js';
import { OUTCOME_CLASSES, OUTCOME_LABELS, type OutcomeClass } from './outcomes.js';
import type { FloodSummary } from './summary.js';
import { GENERATOR_LIMITED, verdictLine } from './report-text.js';
import {
  confirmChart,
  percentileChart,
  stackedBars,
  stockChart,
  timeRows,
} from './report-charts.js';
import { escapeHtml, formatCount, lineChart, type Series } from './svg-chart.js';

// `fsale flood --html report.html`: one self-contained file. The charts are inline SVG drawn
// here (no script, no fonts, no network), so the file opens anywhere, offline, and prints.
// The summary JSON is embedded too, for anyone who wants the numbers behind the pictures.
// The charts are drawn in src/load/report-charts.ts and src/load/svg-chart.ts; this file
// assembles the page.

function table(
  head: readonly string[] | undefined,
  rows: readonly (readonly string[])[],
  id?: string,
): string {
  const thead =
    head === undefined
      ? ''
      : `<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>`;
  return `<table${id === undefined ? '' : ` id="${id}"`}>${thead}<tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:960px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 12px}
.verdict{padding:10px 14px;border-radius:6px;font-weight:600}
.pass{background:#e8f5e9;color:#1b5e20}.fail{background:#ffebee;color:#b71c1c}.inconclusive{background:#fff8e1;color:#8d6e00}
.warn{background:#fff8e1;color:#8d6e00;padding:8px 12px;border-radius:6px;margin:8px 0}
table{border-collapse:collapse;margin:8px 0;width:100%}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#fafafa}
svg.chart{width:100%;height:auto;display:block;background:#fff}
.grid{stroke:#eee}.axis{stroke:#999}
.tick{font-size:11px;fill:#666}.label{font-size:12px;fill:#444}
.series{fill:none;stroke-width:2}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;margin:4px 0 0 88px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-2px;border-radius:2px}
`;

/** The whole report as one HTML document. */
export function renderHtmlReport(s: FloodSummary): string {
  const { rows, bucket } = timeRows(s);
  const xs = rows.map((r) => r.second);
  const end = rows.length * bucket;
  const per = bucket === 1 ? 'each second' : `each ${Math.round(bucket * 1000)} ms`;
  const time = { end, minStep: bucket };
  const latency = lineChart(
    'latency-chart',
    `Latency over time (answers in ${per})`,
    xs,
    [
      { name: 'p50', color: '#1e88e5', values: rows.map((r) => r.p50) },
      { name: 'p99', color: '#e53935', values: rows.map((r) => r.p99) },
      { name: 'max', color: '#6d4c41', values: rows.map((r) => r.max), dashed: true },
    ],
    { log: true, yLabel: 'latency (log)', format: (v) => formatMs(v), ...time },
  );
  // Rows of 100 ms are drawn as rates per second too, so the target reads the same.
  const perSecond = (n: number | null) => (n === null ? null : n / bucket);
  // Drawn in this order so that, when they coincide (a run that kept up), the target's
  // dashes stay visible on top of the sent and answered lines.
  const rateSeries: Series[] = [
    {
      name: 'answered',
      color: '#43a047',
      values: rows.map((r) =>
        perSecond(OUTCOME_CLASSES.reduce((sum, c) => sum + r.outcomes[c], 0)),
      ),
    },
    { name: 'sent', color: '#1e88e5', values: rows.map((r) => perSecond(r.sent)) },
  ];
  if (s.load.model === 'open')
    rateSeries.push({
      name: 'target',
      color: '#616161',
      values: rows.map((r) => perSecond(r.target)),
      dashed: true,
    });
  if (s.follow !== null)
    rateSeries.push({
      name: 'confirmed',
      color: '#8e24aa',
      values: rows.map((r) => perSecond(r.confirmed)),
    });
  const rate = lineChart('rate-chart', 'Target vs achieved rate', xs, rateSeries, {
    log: false,
    yLabel: 'per second',
    format: formatCount,
    ...time,
  });
  const sendLag = lineChart(
    'send-lag-chart',
    `The generator's worst send lag in ${per}`,
    xs,
    [{ name: 'send lag (max)', color: '#fb8c00', values: rows.map((r) => r.sendLagMax) }],
    { log: false, yLabel: 'send lag (ms)', format: formatCount, ...time },
  );
  const inFlight = lineChart(
    'in-flight-chart',
    `Requests in flight (most at once in ${per})`,
    xs,
    [{ name: 'in flight (max)', color: '#1e88e5', values: rows.map((r) => r.inFlightMax) }],
    { log: false, yLabel: 'in flight', format: formatCount, ...time },
  );

  const outcomeRows = OUTCOME_CLASSES.filter(
    (c: OutcomeClass) => s.outcomes[c].count > 0 || c === 'accepted',
  ).map((c) => {
    const o = s.outcomes[c];
    const l = o.latencyMs;
    return [
      OUTCOME_LABELS[c],
      String(o.count),
      ...(l === null
        ? ['-', '-', '-', '-', '-']
        : [l.p50, l.p90, l.p99, l.p999, l.max].map((v) => formatMs(v))),
    ];
  });
  const load =
    s.load.model === 'open'
      ? `open model: ${s.load.rate ?? 0} arrivals/s (${s.load.arrivals ?? 'uniform'})${s.load.rampSeconds > 0 ? `, ${s.load.rampSeconds} s ramp` : ''}${s.load.spikes.map((x) => `, ${x.factor}x spike at ${x.atSeconds} s for ${x.forSeconds} s`).join('')}`
      : `closed model: ${s.load.connections ?? 0} connections`;
  const facts: string[][] = [
    ['load', load],
    [
      'bounded by',
      s.load.requests !== null
        ? `${s.load.requests} ${s.load.model === 'open' ? 'arrivals' : 'requests'}`
        : `${s.load.durationSeconds ?? 0} s`,
    ],
    ['users', String(s.load.users)],
    [
      'rate',
      `${s.rate.achieved}/s achieved${s.rate.target === null ? '' : ` of ${s.rate.target}/s targeted`}; ${s.rate.answeredPerSecond} answers/s`,
    ],
    [
      'requests',
      `${s.requests.sent} sent: ${s.requests.first} first, ${s.requests.retries} retries, ${s.requests.doubleClicks} double clicks`,
    ],
    ['orders accepted', String(s.orders.accepted)],
    [
      'idempotency',
      `${s.idempotency.replays} replays, ${s.idempotency.secondReservations} second reservations`,
    ],
    [
      'time to sell out',
      s.sale.timeToSellOutMs === null ? 'not sold out' : formatMs(s.sale.timeToSellOutMs),
    ],
    [
      'generator',
      s.generator.limited
        ? `limited: ${s.generator.reasons.join('; ')}`
        : `kept up (send lag p99 ${formatMs(s.generator.sendLagMs?.p99)})`,
    ],
  ];
  if (s.follow !== null) {
    const f = s.follow;
    facts.push(
      [
        'followed orders',
        `${f.followed}: ${f.paid} paid, ${f.paymentFailed} payment failed, ${f.needsReconciliation} needs reconciliation, ${f.unsettled} not settled`,
      ],
      [
        'time to confirm',
        f.timeToConfirmMs === null
          ? '-'
          : `p50 ${formatMs(f.timeToConfirmMs.p50)}, p99 ${formatMs(f.timeToConfirmMs.p99)}`,
      ],
      ['fulfilled', f.fulfilledPerSecond === null ? '-' : `${f.fulfilledPerSecond} orders/s`],
    );
  }
  const audit =
    s.audit === null
      ? '<p>Audit skipped (--no-audit).</p>'
      : !s.audit.ran
        ? `<p class="warn">The audit could not run: ${escapeHtml(s.audit.error ?? '')}</p>`
        : table(
            ['invariant', 'expected', 'actual', 'result'],
            s.audit.checks.map((c) => [c.name, c.expected, c.actual, c.ok ? 'OK' : 'FAIL']),
            'audit',
          );
  const thresholds =
    s.thresholds.length === 0
      ? ''
      : `<h2>Thresholds</h2>${table(
          ['threshold', 'actual', 'result'],
          s.thresholds.map((t) => [
            t.expression,
            t.actual === null ? 'not measured' : String(t.actual),
            t.ok ? 'PASS' : 'FAIL',
          ]),
          'thresholds',
        )}`;
  // JSON inside <script> must not close the element: escape '<'.
  const embedded = JSON.stringify(s).replace(/</g, '\\u003c');
  const title = `fsale flood — ${s.target.productId} at ${s.target.url}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${s.generator.limited ? `<p id="generator-limited" class="warn"><strong>${escapeHtml(GENERATOR_LIMITED)}</strong> ${escapeHtml(s.generator.reasons.join('; '))}</p>` : ''}
<h1>${escapeHtml(title)}</h1>
<p class="sub">${escapeHtml(s.startedAt)} to ${escapeHtml(s.finishedAt)}</p>
<p id="verdict" class="verdict ${s.verdict.status}">${escapeHtml(verdictLine(s.verdict))}</p>
<h2>Latency over time</h2>
<p class="sub">${s.latencyOrigin === 'intended_send_time' ? "Measured from each request's intended send time (open model, free of coordinated omission)." : 'Measured from the write (closed model).'}</p>
${latency}
<h2>Outcomes per second</h2>
${stackedBars(s)}
<h2>Target vs achieved rate</h2>
${rate}
${stockChart(s, end)}
<h2>The generator</h2>
<p class="sub">How late it sent (its own delay, included in every latency above) and how many requests it had out at once${s.load.threads > 1 ? ` (${s.load.threads} threads added up: an upper bound)` : ''}.</p>
${sendLag}
${inFlight}
<h2>Latency by outcome</h2>
${percentileChart(s)}
${table(['outcome', 'count', 'p50', 'p90', 'p99', 'p99.9', 'max'], outcomeRows, 'outcomes')}
${confirmChart(s)}
<h2>Run</h2>
${table(undefined, facts, 'facts')}
<h2>Audit</h2>
${audit}
${thresholds}
<script type="application/json" id="flood-summary">${embedded}</script>
</body>
</html>
`;
}
