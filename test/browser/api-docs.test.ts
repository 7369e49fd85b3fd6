// GET /docs: the OpenAPI document as a page (Swagger UI from its npm package), in a real
// browser. Offline: every request the page makes goes to the API's own origin, and the page
// renders the buy operation from /docs/json without a console error.
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';
import { CHROMIUM_ARGS, pageErrors } from '../helpers/browser.js';

describe('the API docs page in a real browser', () => {
  let api: RunningApi;
  let browser: Browser;
  beforeAll(async () => {
    api = await startApi(await useTestServices());
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });
  afterAll(() => browser.close());

  it('renders every operation from this origin only, with a CSP and no console error', async () => {
    const page = await browser.newPage();
    const errors = pageErrors(page);
    const elsewhere: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(api.url) || url.startsWith('data:')) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    const response = await page.goto(`${api.url}/docs`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toMatch(/default-src 'self'/);
    await expect
      .poll(() => page.locator('.opblock-summary-path').allTextContents(), { timeout: 30_000 })
      .toContain('/order/buy');
    expect(await page.locator('.title').first().textContent()).toMatch(/fsale/);
    expect({ elsewhere, errors }).toEqual({ elsewhere: [], errors: [] });
  });
});
