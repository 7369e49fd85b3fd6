import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlood } from '../../src/load/flood.js';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import { renderHtmlReport } from '../../src/load/report-html.js';
import type { FloodSummary } from '../../src/load/summary.js';
import { parseThreshold } from '../../src/load/thresholds.js';
import { engineOptions } from './engine-options.js';
import { problem, startStallServer } from './stall-server.js';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

describe('the HTML report', () => {
  let browser: Browser;
  let dir: string;
  let summary: FloodSummary;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fsale-report-'));
    // A sale with every kind of answer and a stall, so each chart has something to draw.
    const server = await startStallServer({
      stallAfterMs: 700,
      stallMs: 400,
      answer: (n) =>
        n <= 150
          ? {
              status: 202,
              body: JSON.stringify({
                orderId: `0190a0b0-0000-7000-8000-${String(n).padStart(12, '0')}`,
                status: 'queued',
                statusUrl: `/order/${n}`,
              }),
            }
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
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href);

    // Self-contained: the only thing loaded is the file itself.
    expect(requests.filter((url) => !url.startsWith('file:') && !url.startsWith('data:'))).toEqual(
      [],
    );
    expect(errors).toEqual([]);

    for (const chart of ['latency-chart', 'outcomes-chart', 'rate-chart', 'percentiles-chart']) {
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

  it('escapes what it embeds: a product id cannot inject markup', () => {
    const html = renderHtmlReport({
      ...summary,
      target: { ...summary.target, productId: '</script><img src=x onerror=alert(1)>' },
    });
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('\\u003c/script>');
  });
});
