import { formatMs, mergeEncoded, type LatencyStats } from './latency.js';
import { OUTCOME_CLASSES, OUTCOME_COLORS, OUTCOME_LABELS } from './outcomes.js';
import type { TimelineRow } from './recorder.js';
import type { FloodSummary } from './summary.js';
import {
  escapeHtml,
  formatCount,
  formatSeconds,
  legend,
  lineChart,
  linearScale,
  logScale,
  MARGIN,
  PLOT_W,
  svg,
  timeTicks,
  timeX,
  xAxis,
  yAxis,
} from './svg-chart.js';

// The flood report's own charts, drawn from a FloodSummary: outcomes per second, stock, time to
// confirm, latency percentiles by outcome. The page around them is src/load/report-html.ts.

/** The rows a time chart draws: 100 ms rows for a short run, else one a second. */
export interface TimeRows {
  rows: readonly TimelineRow[];
  /** Seconds per row. */
  bucket: number;
}

export function timeRows(s: FloodSummary): TimeRows {
  if (s.timelineFine !== null && s.timelineFine.rows.length > 0)
    return { rows: s.timelineFine.rows, bucket: s.timelineFine.bucketMs / 1000 };
  return { rows: s.timeline, bucket: 1 };
}

/** Outcome counts per row (a second, or 100 ms), stacked. */
export function stackedBars(summary: FloodSummary): string {
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
export function stockChart(s: FloodSummary, end: number): string {
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
export function confirmChart(s: FloodSummary): string {
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
export function percentileChart(summary: FloodSummary): string {
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
