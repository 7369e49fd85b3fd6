// The SVG chart drawing of the flood report (src/load/report-html.ts): scales, axes whose tick
// labels cannot touch, legends and line charts over time, all as markup strings: no script, no
// fonts, no network, so the page opens anywhere, offline, and prints.

const WIDTH = 900;
const HEIGHT = 260;
// Wide enough on the left for a 7-character tick label beside the rotated axis label.
export const MARGIN = { top: 16, right: 20, bottom: 40, left: 88 };
export const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
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

export interface Series {
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

export function linearScale(max: number, format: (v: number) => string): Scale {
  const top = niceCeil(Math.max(max, 1));
  const ticks = Array.from({ length: 5 }, (_, i) => (top * i) / 4).map((value) => ({
    value,
    label: format(value),
  }));
  return { y: (v) => MARGIN.top + PLOT_H - (v / top) * PLOT_H, ticks };
}

export function logScale(min: number, max: number, format: (v: number) => string): Scale {
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

export function yAxis(scale: Scale, yLabel: string): string {
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

export function xAxis(ticks: readonly { x: number; label: string }[], xLabel: string): string {
  return [
    ...ticks.map(
      (t) =>
        `<text class="tick" x="${t.x.toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${escapeHtml(t.label)}</text>`,
    ),
    `<text class="label" x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>`,
  ].join('');
}

/** x of `seconds` on a time axis that ends at `end`. */
export const timeX = (seconds: number, end: number) =>
  MARGIN.left + (end <= 0 ? PLOT_W / 2 : (seconds / end) * PLOT_W);

export function legend(series: readonly { name: string; color: string }[]): string {
  return `<div class="legend">${series
    .map((s) => `<span><i style="background:${s.color}"></i>${escapeHtml(s.name)}</span>`)
    .join('')}</div>`;
}

export function svg(id: string, title: string, body: string): string {
  return `<svg id="${id}" class="chart" data-chart="${id}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(title)}" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(title)}</title>${body}</svg>`;
}

/** Lines over time, one value at each `xs` (seconds); a null breaks the line. */
export function lineChart(
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
