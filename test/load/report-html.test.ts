import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlood } from '../../src/load/flood.js';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import { encodeHistogram, newHistogram, recordMs } from '../../src/load/latency.js';
import { renderHtmlReport } from '../../src/load/report-html.js';
import type { TimelineRow } from '../../src/load/recorder.js';
import type { FloodSummary } from '../../src/load/summary.js';
import { parseThreshold } from '../../src/load/thresholds.js';
import { engineOptions } from '../helpers/engine-options.js';
import { accepted, problem, startStallServer } from '../helpers/stall-server.js';
import { CHROMIUM_ARGS, pageErrors } from '../helpers/browser.js';

interface Box {
  text: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

describe('the HTML report', () => {
  let browser: Browser;
  let dir: string;
  let summary: FloodSummary;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fsale-report-'));
    // A sale with every kind of answer and a stall, so each chart has something to draw.
    const server = await startStallServer({
      stallAfterMs: 700,
      remaining: 150,
      stallMs: 400,
      answer: (n) =>
        n <= 150
          ? accepted(n)
          : n % 17 === 0
            ? problem('rate_limited', 429)
            : n % 23 === 0
              ? problem('overloaded', 503)
              : n % 29 === 0
                ? problem('limit_reached', 409)
                : problem('sold_out', 409),
    });
    try {
      summary = await runFlood({
        ...engineOptions(server.url, {
          kind: 'open',
          shape: {
            rate: 300,
            rampSeconds: 1,
            spikes: [{ factor: 2, atSeconds: 1.5, forSeconds: 0.5 }],
          },
          arrivals: 'poisson',
          durationSeconds: 2.5,
          requests: undefined,
        }),
        thresholds: ['errors=0', 'p99<1ms'].map((t) => parseThreshold(t, OUTCOME_CLASSES)),
        // A fixed audit report: this test is about drawing it, the real audit runs in stack.test.ts.
        audit: async () => ({
          ok: true,
          checks: [{ name: 'p1: no oversell', ok: true, expected: '<= 150', actual: '150' }],
        }),
      });
    } finally {
      await server.close();
    }
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is one file that opens offline in headless chromium, with its charts drawn and no console errors', async () => {
    const file = join(dir, 'report.html');
    await writeFile(file, renderHtmlReport(summary));
    const page = await browser.newPage();
    const errors = pageErrors(page);
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href);

    // Self-contained: the only thing loaded is the file itself.
    expect(requests.filter((url) => !url.startsWith('file:') && !url.startsWith('data:'))).toEqual(
      [],
    );
    expect(errors).toEqual([]);

    for (const chart of [
      'latency-chart',
      'outcomes-chart',
      'rate-chart',
      'percentiles-chart',
      'stock-chart',
      'send-lag-chart',
      'in-flight-chart',
    ]) {
      const box = await page.locator(`svg#${chart}`).boundingBox();
      expect(box?.width, chart).toBeGreaterThan(300);
      expect(box?.height, chart).toBeGreaterThan(80);
    }
    expect(await page.locator('#latency-chart path.series').count()).toBe(3);
    expect(await page.locator('#rate-chart path.series').count()).toBe(3); // target, sent, answered
    // One bar segment per second and outcome present in it.
    expect(
      await page.locator('#outcomes-chart rect[data-outcome="accepted"]').count(),
    ).toBeGreaterThan(0);
    expect(
      await page.locator('#outcomes-chart rect[data-outcome="sold_out"]').count(),
    ).toBeGreaterThan(0);
    expect(await page.locator('#percentiles-chart path.series').count()).toBeGreaterThanOrEqual(4);
    expect(await page.textContent('#verdict')).toMatch(/^FAIL \(exit 3\)/);
    expect(await page.locator('#audit tbody tr').count()).toBe(1);
    expect(await page.locator('#thresholds tbody tr').count()).toBe(2);

    // The numbers behind the charts ride along.
    const embedded = JSON.parse(
      (await page.textContent('#flood-summary')) ?? 'null',
    ) as FloodSummary;
    expect(embedded.requests.sent).toBe(summary.requests.sent);

    const screenshot = await page.screenshot({ fullPage: true });
    expect(screenshot.length).toBeGreaterThan(20_000);
    await page.close();
  });

  it('a run under 10 s is drawn in 100 ms rows; stock, send lag and in-flight over time are drawn', async () => {
    expect(summary.timelineFine?.bucketMs).toBe(100);
    const rows = summary.timelineFine?.rows.length ?? 0;
    expect(rows).toBeGreaterThanOrEqual(25);
    const page = await browser.newPage();
    await page.setContent(renderHtmlReport(summary));
    expect(await page.textContent('#outcomes-chart title')).toBe('Outcomes per 100 ms');
    // One dot per 100 ms row that answered something (≤ 60 rows are dotted).
    expect(await page.locator('#latency-chart circle').count()).toBeGreaterThan(3 * 10);
    // Stock: the 150 read before the run, minus the 150 orders, down to 0.
    expect(summary.stock).toMatchObject({ source: 'orders', initial: 150 });
    expect(summary.stock?.samples.at(-1)?.remaining).toBe(0);
    expect(await page.locator('#stock-chart path.series').count()).toBe(1);
    expect(await page.locator('#send-lag-chart path.series').count()).toBe(1);
    expect(await page.locator('#in-flight-chart path.series').count()).toBe(1);
    // No --follow, no time-to-confirm chart.
    expect(await page.locator('#confirm-chart').count()).toBe(0);
    await page.close();
  });

  it('with --follow, the time-to-confirm distribution is drawn from its histogram', async () => {
    const confirm = newHistogram();
    for (let i = 1; i <= 300; i++) recordMs(confirm, 200 + i * 10);
    const followed = {
      ...summary,
      follow: {
        followed: 300,
        viaStream: 300,
        viaPolling: 0,
        streamFallbacks: 0,
        streamMisses: 0,
        pollRequests: 0,
        pollErrors: 0,
        paid: 300,
        paymentFailed: 0,
        needsReconciliation: 0,
        unsettled: 0,
        byStatus: { paid: 300 },
        timeToConfirmMs: null,
        fulfilledPerSecond: 100,
        lastConfirmedAtMs: 3200,
        complete: true,
      },
      histograms: { ...summary.histograms, confirm: encodeHistogram(confirm) },
    };
    const page = await browser.newPage();
    await page.setContent(renderHtmlReport(followed));
    expect(await page.locator('#confirm-chart path.series').count()).toBe(1);
    expect(await page.textContent('h2:has-text("Time to confirm") + p')).toMatch(/300 paid orders/);
    await page.close();
  });

  it('no two labels of any chart overlap, for a short run, a long one and one with big numbers', async () => {
    const long = (seconds: number, scale: number): FloodSummary => {
      const template = summary.timeline[1] ?? summary.timeline[0];
      if (template === undefined) throw new Error('no timeline');
      const rows: TimelineRow[] = Array.from({ length: seconds }, (_, second) => ({
        ...template,
        second,
        sent: template.sent * scale,
        target: (template.target ?? 0) * scale,
        outcomes: Object.fromEntries(
          OUTCOME_CLASSES.map((c) => [c, template.outcomes[c] * scale]),
        ) as TimelineRow['outcomes'],
        p50: 0.8 + (second % 7),
        p99: 12_000 + second,
        max: 3_600_000,
        sendLagMax: 1234.5 * scale,
        inFlightMax: 987 * scale,
      }));
      return {
        ...summary,
        timeline: rows,
        timelineFine: null,
        stock: {
          source: 'stock_stream',
          initial: 2_000_000,
          samples: rows.map((r) => ({
            atMs: r.second * 1000,
            remaining: 2_000_000 - r.second * 3000,
          })),
        },
      };
    };
    const cases: [string, FloodSummary][] = [
      ['short', summary],
      ['45 s', long(45, 1)],
      ['10 min, big numbers', long(600, 5000)],
      ['2 h', long(7200, 20)],
    ];
    const page = await browser.newPage();
    for (const [name, s] of cases) {
      await page.setContent(renderHtmlReport(s));
      // A string, run in the page: this Node-only build has no DOM types.
      const charts = await page.evaluate<{ id: string; boxes: Box[] }[]>(`
        Array.from(document.querySelectorAll('svg.chart')).map((chart) => ({
          id: chart.id,
          boxes: Array.from(chart.querySelectorAll('text')).map((t) => {
            const r = t.getBoundingClientRect();
            return { text: t.textContent ?? '', x: r.x, y: r.y, w: r.width, h: r.height };
          }),
        }))`);
      expect(charts.length).toBeGreaterThanOrEqual(7);
      for (const chart of charts) {
        const { boxes } = chart;
        for (let i = 0; i < boxes.length; i++) {
          for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i];
            const b = boxes[j];
            if (a === undefined || b === undefined) continue;
            const overlap =
              a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
            expect(overlap, `${name} ${chart.id}: "${a.text}" and "${b.text}" overlap`).toBe(false);
          }
        }
      }
    }
    await page.close();
  });

  it('escapes what it embeds: a product id cannot inject markup', () => {
    const html = renderHtmlReport({
      ...summary,
      target: { ...summary.target, productId: '</script><img src=x onerror=alert(1)>' },
    });
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('\\u003c/script>');
  });
});
