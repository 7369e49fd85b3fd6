import { formatMs, mergeEncoded, type LatencyStats } from './latency.js';
import { OUTCOME_CLASSES, OUTCOME_COLORS, OUTCOME_LABELS, type OutcomeClass } from './outcomes.js';
import type { TimelineRow } from './recorder.js';
import type { FloodSummary } from './summary.js';
import { GENERATOR_LIMITED, verdictLine } from './report-text.js';

// `fsale flood --html report.html`: one self-contained file. The charts are inline SVG drawn
// here (no script, no fonts, no network), so the file opens anywhere, offline, and prints.
// The summary JSON is embedded too, for anyone who wants the numbers behind the pictures.

const WIDTH = 900;
const HEIGHT = 260;
// Wide enough on the left for a 7-character tick label beside the rotated axis label.
const MARGIN = { top: 16, right: 20, bottom: 40, left: 88 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
/** Tick labels are 11 px: a character is at most about 7 px wide, and labels keep 16 px apart. */
const CHAR_PX = 7;
const TICK_GAP_PX = 16;

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

interface Series {
  name: string;
  color: string;
  /** One value per x (null: nothing measured there, the line breaks). */
  values: readonly (number | null)[];
  dashed?: boolean;
  /** Drawn as steps (the value holds until the next point), as a stock level is. */
  step?: boolean;
}

interface Scale {
  y: (v: number) => number;
  ticks: { value: number; label: string }[];
}

/** Counts for axes: 950, 12.5k, 3.2M (never wider than the margin). */
export function formatCount(v: number): string {
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${+(v / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e4) return `${+(v / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  return String(Math.round(v * 100) / 100);
}

function linearScale(max: number, format: (v: number) => string): Scale {
  const top = niceCeil(Math.max(max, 1));
  const ticks = Array.from({ length: 5 }, (_, i) => (top * i) / 4).map((value) => ({
    value,
    label: format(value),
  }));
  return { y: (v) => MARGIN.top + PLOT_H - (v / top) * PLOT_H, ticks };
}

function logScale(min: number, max: number, format: (v: number) => string): Scale {
  const lo = Math.floor(Math.log10(Math.max(min, 0.001)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(max, 0.001))));
  const ticks = [];
  for (let e = lo; e <= hi; e++) ticks.push({ value: 10 ** e, label: format(10 ** e) });
  return {
    y: (v) => MARGIN.top + PLOT_H - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * PLOT_H,
    ticks,
  };
}

function niceCeil(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

const NICE_STEPS = [
  0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 43_200,
  86_400,
];

/** Seconds as a tick label: 0.3, 12, 1:30, 1:00:00. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return String(Math.round(seconds * 10) / 10);
  const s = Math.round(seconds);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}:${two(s % 60)}`;
  return `${Math.floor(s / 3600)}:${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
}

/**
 * Tick values along [0, end] seconds spaced so that their labels cannot touch: the smallest
 * nice step (at least `minStep`) that leaves every label its width plus a gap.
 */
export function timeTicks(end: number, width: number, minStep = 0): number[] {
  const span = Math.max(end, minStep, 0.1);
  const fits = (step: number) => {
    const widest = Math.max(formatSeconds(span).length, formatSeconds(step).length);
    return (step / span) * width >= widest * CHAR_PX + TICK_GAP_PX;
  };
  const step =
    NICE_STEPS.find((candidate) => candidate >= minStep - 1e-9 && fits(candidate)) ??
    Math.ceil(span / 4);
  const ticks: number[] = [];
  for (let i = 0; i * step <= span + 1e-9; i++) ticks.push(Math.round(i * step * 1000) / 1000);
  return ticks;
}

function yAxis(scale: Scale, yLabel: string): string {
  const parts: string[] = [];
  for (const tick of scale.ticks) {
    const y = scale.y(tick.value).toFixed(1);
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y}" y2="${y}"/>`,
      `<text class="tick" x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + PLOT_H}" y2="${MARGIN.top + PLOT_H}"/>`,
    `<line class="axis" x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}"/>`,
    `<text class="label" transform="translate(14 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" dominant-baseline="hanging">${escapeHtml(yLabel)}</text>`,
  );
  return parts.join('');
}

function xAxis(ticks: readonly { x: number; label: string }[], xLabel: string): string {
  return [
    ...ticks.map(
      (t) =>
        `<text class="tick" x="${t.x.toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${escapeHtml(t.label)}</text>`,
    ),
    `<text class="label" x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>`,
  ].join('');
}

/** x of `seconds` on a time axis that ends at `end`. */
const timeX = (seconds: number, end: number) =>
  MARGIN.left + (end <= 0 ? PLOT_W / 2 : (seconds / end) * PLOT_W);

function legend(series: readonly { name: string; color: string }[]): string {
  return `<div class="legend">${series
    .map((s) => `<span><i style="background:${s.color}"></i>${escapeHtml(s.name)}</span>`)
    .join('')}</div>`;
}

function svg(id: string, title: string, body: string): string {
  return `<svg id="${id}" class="chart" data-chart="${id}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(title)}" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(title)}</title>${body}</svg>`;
}

/** The rows a time chart draws: 100 ms rows for a short run, else one a second. */
interface TimeRows {
  rows: readonly TimelineRow[];
  /** Seconds per row. */
  bucket: number;
}

function timeRows(s: FloodSummary): TimeRows {
  if (s.timelineFine !== null && s.timelineFine.rows.length > 0)
    return { rows: s.timelineFine.rows, bucket: s.timelineFine.bucketMs / 1000 };
  return { rows: s.timeline, bucket: 1 };
}

/** Lines over time, one value at each `xs` (seconds); a null breaks the line. */
function lineChart(
  id: string,
  title: string,
  xs: readonly number[],
  series: readonly Series[],
  options: {
    log: boolean;
    yLabel: string;
    format: (v: number) => string;
    end?: number;
    minStep?: number;
  },
): string {
  const end = options.end ?? Math.max(0, ...xs);
  const values = series.flatMap((s) => s.values.filter((v): v is number => v !== null && v > 0));
  const scale = options.log
    ? logScale(Math.min(...values, 1), Math.max(...values, 1), options.format)
    : linearScale(Math.max(...values, 1), options.format);
  const ticks = timeTicks(end, PLOT_W, options.minStep).map((t) => ({
    x: timeX(t, end),
    label: formatSeconds(t),
  }));
  const paths = series.map((s) => {
    let d = '';
    let pen = false;
    let lastY = '';
    const dots: string[] = [];
    for (const [i, v] of s.values.entries()) {
      if (v === null || (options.log && v <= 0)) {
        pen = false;
        continue;
      }
      const x = timeX(xs[i] ?? 0, end).toFixed(1);
      const y = scale.y(v).toFixed(1);
      if (pen && s.step === true) d += `L${x} ${lastY}`;
      d += `${pen ? 'L' : 'M'}${x} ${y}`;
      pen = true;
      lastY = y;
      if (s.values.length <= 60 && s.step !== true)
        dots.push(
          `<circle cx="${x}" cy="${y}" r="2.5" fill="${s.color}"><title>${escapeHtml(`${s.name} at ${formatSeconds(xs[i] ?? 0)} s: ${options.format(v)}`)}</title></circle>`,
        );
    }
    if (s.step === true && pen) d += `L${timeX(end, end).toFixed(1)} ${lastY}`;
    return `<path class="series" data-series="${escapeHtml(s.name)}" d="${d}" stroke="${s.color}"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>${dots.join('')}`;
  });
  return (
    svg(
      id,
      title,
      yAxis(scale, options.yLabel) + xAxis(ticks, 'seconds since start') + paths.join(''),
    ) + legend(series)
  );
}

/** Outcome counts per row (a second, or 100 ms), stacked. */
function stackedBars(summary: FloodSummary): string {
  const { rows, bucket } = timeRows(summary);
  const points = Math.max(1, rows.length);
  const totals = rows.map((r) => OUTCOME_CLASSES.reduce((sum, c) => sum + r.outcomes[c], 0));
  const scale = linearScale(Math.max(...totals, 1), formatCount);
  const slot = PLOT_W / points;
  const barWidth = Math.max(1, slot * 0.8);
  const used = OUTCOME_CLASSES.filter((c) => rows.some((r) => r.outcomes[c] > 0));
  const bars: string[] = [];
  rows.forEach((row, i) => {
    let base = 0;
    const x = (MARGIN.left + i * slot + (slot - barWidth) / 2).toFixed(1);
    for (const c of used) {
      const n = row.outcomes[c];
      if (n === 0) continue;
      const y0 = scale.y(base);
      const y1 = scale.y(base + n);
      bars.push(
        `<rect class="bar" data-outcome="${c}" x="${x}" y="${y1.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${Math.max(0.5, y0 - y1).toFixed(1)}" fill="${OUTCOME_COLORS[c]}"><title>${escapeHtml(`${OUTCOME_LABELS[c]} at ${formatSeconds(row.second)} s: ${n}`)}</title></rect>`,
      );
      base += n;
    }
  });
  // Bars fill [second, second + bucket): ticks mark the start of their time.
  const end = points * bucket;
  const ticks = timeTicks(end, PLOT_W, bucket).map((t) => ({
    x: timeX(t, end),
    label: formatSeconds(t),
  }));
  const per = bucket === 1 ? 'second' : `${Math.round(bucket * 1000)} ms`;
  return (
    svg(
      'outcomes-chart',
      `Outcomes per ${per}`,
      yAxis(scale, `answers per ${per}`) +
        xAxis(ticks, 'seconds since start (by answer time)') +
        bars.join(''),
    ) + legend(used.map((c) => ({ name: OUTCOME_LABELS[c], color: OUTCOME_COLORS[c] })))
  );
}

/** Stock remaining: the stock stream's samples, or the stock read before minus the orders. */
function stockChart(s: FloodSummary, end: number): string {
  const stock = s.stock;
  if (stock === null || stock.samples.length === 0) return '';
  const samples =
    stock.initial !== null && (stock.samples[0]?.atMs ?? 0) > 0
      ? [{ atMs: 0, remaining: stock.initial }, ...stock.samples]
      : stock.samples;
  const chart = lineChart(
    'stock-chart',
    'Stock remaining',
    samples.map((x) => x.atMs / 1000),
    [
      {
        name:
          stock.source === 'stock_stream'
            ? 'stock (stock stream)'
            : 'stock (before the run, minus its orders)',
        color: '#2e7d32',
        values: samples.map((x) => x.remaining),
        step: true,
      },
    ],
    {
      log: false,
      yLabel: 'units left',
      format: formatCount,
      end: Math.max(end, (samples.at(-1)?.atMs ?? 0) / 1000),
    },
  );
  const note =
    stock.source === 'stock_stream'
      ? 'As GET /stock/:id/stream announced it (--follow).'
      : 'Without --follow: the stock read before the run, minus the orders this run was accepted, as they were accepted (other buyers are not seen).';
  return `<h2>Stock remaining</h2><p class="sub">${escapeHtml(note)}</p>${chart}`;
}

/** Time to confirm (click to paid): the share of paid orders confirmed within each time. */
function confirmChart(s: FloodSummary): string {
  const encoded = s.histograms.confirm;
  if (s.follow === null || encoded === null) return '';
  const histogram = mergeEncoded([encoded]);
  if (histogram.totalCount === 0) return '';
  const quantiles = [...Array.from({ length: 51 }, (_, i) => i * 2), 99, 99.9].sort(
    (a, b) => a - b,
  );
  const points = quantiles.map((q) => ({ seconds: histogram.getValueAtPercentile(q) / 1e6, q }));
  const end = Math.max(0.001, ...points.map((p) => p.seconds));
  const scale = linearScale(100, (v) => `${v}%`);
  const ticks = timeTicks(end, PLOT_W).map((t) => ({ x: timeX(t, end), label: formatSeconds(t) }));
  let d = '';
  for (const p of points)
    d += `${d === '' ? 'M' : 'L'}${timeX(p.seconds, end).toFixed(1)} ${scale.y(p.q).toFixed(1)}`;
  const marks = [50, 99]
    .map((q) => {
      const seconds = histogram.getValueAtPercentile(q) / 1e6;
      return `<circle cx="${timeX(seconds, end).toFixed(1)}" cy="${scale.y(q).toFixed(1)}" r="3.5" fill="#8e24aa"><title>${escapeHtml(`p${q}: ${formatMs(seconds * 1000)}`)}</title></circle>`;
    })
    .join('');
  const chart = svg(
    'confirm-chart',
    'Time to confirm',
    yAxis(scale, 'paid orders confirmed') +
      xAxis(ticks, 'seconds from the click') +
      `<path class="series" data-series="confirmed within" d="${d}" stroke="#8e24aa"/>${marks}`,
  );
  return `<h2>Time to confirm</h2><p class="sub">Click (intended send) to the order seen paid, over the ${histogram.totalCount} paid orders followed: the share confirmed within each time.</p>${chart}${legend([{ name: 'paid orders confirmed within', color: '#8e24aa' }])}`;
}

const PERCENTILES: { key: keyof LatencyStats; label: string }[] = [
  { key: 'p50', label: 'p50' },
  { key: 'p90', label: 'p90' },
  { key: 'p99', label: 'p99' },
  { key: 'p999', label: 'p99.9' },
  { key: 'max', label: 'max' },
];

/** Each outcome class's latency at p50..max: the shape of the tail, per class. */
function percentileChart(summary: FloodSummary): string {
  const classes = OUTCOME_CLASSES.filter((c) => summary.outcomes[c].latencyMs !== null);
  const series = classes.map((c) => ({
    name: OUTCOME_LABELS[c],
    color: OUTCOME_COLORS[c],
    values: PERCENTILES.map((p) => summary.outcomes[c].latencyMs?.[p.key] ?? null),
  }));
  const values = series.flatMap((s) => s.values.filter((v): v is number => v !== null && v > 0));
  const scale = logScale(Math.min(...values, 1), Math.max(...values, 1), (v) => formatMs(v));
  const x = (i: number) => MARGIN.left + 40 + (i / (PERCENTILES.length - 1)) * (PLOT_W - 80);
  const parts: string[] = [
    yAxis(scale, 'latency (log)'),
    xAxis(
      PERCENTILES.map((p, i) => ({ x: x(i), label: p.label })),
      'percentile',
    ),
  ];
  for (const s of series) {
    let d = '';
    s.values.forEach((v, i) => {
      if (v !== null) d += `${d === '' ? 'M' : 'L'}${x(i).toFixed(1)} ${scale.y(v).toFixed(1)}`;
    });
    parts.push(
      `<path class="series" data-series="${escapeHtml(s.name)}" d="${d}" stroke="${s.color}"/>`,
    );
    s.values.forEach((v, i) => {
      if (v !== null)
        parts.push(
          `<circle cx="${x(i).toFixed(1)}" cy="${scale.y(v).toFixed(1)}" r="3" fill="${s.color}"><title>${escapeHtml(`${s.name} ${PERCENTILES[i]?.label ?? ''}: ${formatMs(v)}`)}</title></circle>`,
        );
    });
  }
  return (
    svg('percentiles-chart', 'Latency percentiles by outcome', parts.join('')) + legend(series)
  );
}

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
