import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintTokens } from '../../src/auth/tokens.js';
import { buildGateway, listenGateway } from '../../src/gateway/app.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { buy, freshKey, seed, startApi, type RunningApi } from '../helpers/sale.js';
import { CHROMIUM_ARGS, pageErrors } from '../helpers/browser.js';
import { TEST_JWT_SECRET, useTestServices, type TestServices } from '../helpers/services.js';

describe('storefront in a real browser', () => {
  let s: TestServices;
  let api: RunningApi;
  let browser: Browser;
  const workers: CliProcess[] = [];
  beforeAll(async () => {
    s = await useTestServices();
    api = await startApi(s, { demoAuth: true });
    // Every charge succeeds, so the order's path to "confirmed" is deterministic.
    const gateway = buildGateway({
      seed: 3,
      speed: 100,
      rates: { hang: 0, unavailable: 0, rateLimited: 0, declined: 0 },
    });
    const gatewayUrl = await listenGateway(gateway, '127.0.0.1', 0);
    const env = { ...s.env, FSALE_GATEWAY_URL: gatewayUrl };
    workers.push(
      startCli(['work', 'orders', '--json'], env),
      startCli(['work', 'payments', '--json'], env),
    );
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    return async () => {
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
      await gateway.close();
    };
  });
  afterAll(() => browser.close());

  it('shows live stock falling as others buy, and takes a click from queued to confirmed', async () => {
    await seed(s, { productId: 'web', stock: 50, name: 'Golden ticket', priceCents: 2500 });
    const page = await browser.newPage();
    const errors = pageErrors(page);

    await page.goto(`${api.url}/?product=web&user=alice`);
    const text = (selector: string) => page.textContent(selector);
    await expect.poll(() => text('#name'), { timeout: 30_000 }).toBe('Golden ticket');
    expect(await text('#remaining')).toBe('50');
    expect(await text('#price')).toBe('$25.00');
    expect(await text('#user')).toBe('alice');

    // Ten other shoppers buy through the API: the page's EventSource sees the stock fall.
    const tokens = mintTokens(
      TEST_JWT_SECRET,
      Array.from({ length: 10 }, (_, i) => `other${i}`),
      600,
    );
    await Promise.all(
      tokens.map((token) => buy(api, { token, productId: 'web', key: freshKey() })),
    );
    await expect.poll(() => text('#remaining'), { timeout: 30_000 }).toBe('40');

    await page.click('#buy');
    await expect.poll(() => text('#status'), { timeout: 60_000 }).toMatch(/^Confirmed/);
    await expect.poll(() => text('#remaining'), { timeout: 30_000 }).toBe('39');

    const { rows } = await s.pool.query<{ status: string }>(
      "SELECT status FROM orders WHERE product_id = 'web' AND user_id = 'alice'",
    );
    expect(rows).toEqual([{ status: 'paid' }]);
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  });

  it('without --demo-auth the page says demo sign-in is off, shows the stock, and cannot buy', async () => {
    await seed(s, { productId: 'shut', stock: 12, name: 'Locked ticket' });
    const locked = await startApi(s);
    const page = await browser.newPage();
    await page.goto(`${locked.url}/?product=shut&user=bob`);
    await expect
      .poll(() => page.textContent('#status'), { timeout: 30_000 })
      .toBe(
        'Demo sign-in is off on this server, so this page cannot buy. Live stock is still shown.',
      );
    // It states the fact to a shopper; it does not tell whoever reads it how to turn it on.
    expect(await page.content()).not.toContain('--demo-auth');
    expect(await page.textContent('#remaining')).toBe('12');
    expect(await page.isDisabled('#buy')).toBe(true);
    expect(await page.isVisible('#signed-in')).toBe(false);
    await page.close();
  });
});
