import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectPassedUnlessLimited, startFloodStack } from '../helpers/stack.js';
import { newHistogram } from '../../src/load/latency.js';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import type { FloodSummary } from '../../src/load/summary.js';
import { runCli } from '../helpers/cli.js';
import { saleNumbers } from '../helpers/invariants.js';
import { seed, type RunningApi } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

const schema = JSON.parse(
  await readFile(new URL('../../src/load/summary.schema.json', import.meta.url), 'utf8'),
) as object;
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

function parseSummary(stdout: string): FloodSummary {
  const summary = JSON.parse(stdout) as FloodSummary;
  validate(summary);
  expect(validate.errors ?? [], 'the --json summary matches summary.schema.json').toEqual([]);
  return summary;
}

/** As in stack.test.ts: these runs prove what happens to the orders, not the machine's speed. */
const TOLERATE_A_SLOW_GENERATOR = ['--max-send-lag', '5s'];

/** One sale's shape: 600 arrivals at 300/s by 600 buyers for 150 units. */
const SALE = ['--rate', '300', '--requests', '600', '--users', '600', '--seed', '17'];
const STOCK = 150;

const counts = (s: FloodSummary) =>
  Object.fromEntries(OUTCOME_CLASSES.map((c) => [c, s.outcomes[c].count]));

describe('one sale as three parts run at once on this machine, merged, against the whole stack', () => {
  let s: TestServices;
  let api: RunningApi;
  let env: Record<string, string>;
  let dir: string;
  beforeAll(async () => {
    s = await useTestServices();
    const stack = await startFloodStack(s, {
      seed: 3,
      rates: { hang: 0, unavailable: 0, rateLimited: 0, declined: 0 },
    });
    ({ api, env, dir } = stack);
    return () => stack.stop();
  });

  const flood = (product: string, extra: string[]) =>
    runCli(
      [
        'flood',
        '--product',
        product,
        '--url',
        api.url,
        ...SALE,
        '--quiet',
        '--json',
        ...TOLERATE_A_SLOW_GENERATOR,
        ...extra,
      ],
      env,
    );

  it('the merged parts give the outcome counts and invariants of one flood of the same size, and the percentiles of their union', async () => {
    await seed(s, { productId: 'whole', stock: STOCK, priceCents: 100 });
    await seed(s, { productId: 'parted', stock: STOCK, priceCents: 100 });

    const one = await flood('whole', []);
    const whole = parseSummary(one.stdout);
    expectPassedUnlessLimited(one.code, whole);

    // Far enough ahead for three CLIs to start and prepare on two busy cores.
    const startAt = new Date(Date.now() + 8_000).toISOString();
    const runs = await Promise.all(
      [1, 2, 3].map((k) => flood('parted', ['--part', `${k}/3`, '--start-at', startAt])),
    );
    const files: string[] = [];
    const parts = runs.map((run, i) => {
      const part = parseSummary(run.stdout);
      expectPassedUnlessLimited(run.code, part);
      expect(part.load.slice).toEqual({ index: i, count: 3 });
      expect(part.load.startAt).toBe(startAt);
      return part;
    });
    for (const [i, run] of runs.entries()) {
      const file = join(dir, `part${i + 1}.json`);
      await writeFile(file, run.stdout);
      files.push(file);
    }
    // No buyer in two parts.
    expect(parts.reduce((n, p) => n + p.requests.sent, 0)).toBe(600);

    const html = join(dir, 'sale.html');
    const result = await runCli(
      [
        'report',
        'merge',
        ...files,
        '--json',
        '--html',
        html,
        '--threshold',
        `orders=${STOCK}`,
        '--threshold',
        'errors=0',
      ],
      env,
    );
    expect(result.stderr).toBe('');
    const merged = parseSummary(result.stdout);
    expectPassedUnlessLimited(result.code, merged);
    expect(merged.parts?.map((p) => p.slice.index)).toEqual([0, 1, 2]);
    expect(merged.thresholds.map((t) => [t.expression, t.ok])).toEqual([
      [`orders=${STOCK}`, true],
      ['errors=0', true],
    ]);

    // Same outcome counts as the one flood: the sale sells out at the stock either way.
    expect(merged.requests.sent).toBe(whole.requests.sent);
    expect(counts(merged)).toEqual(counts(whole));
    expect(merged.orders.accepted).toBe(STOCK);
    expect(merged.outcomes.sold_out.count).toBe(600 - STOCK);
    expect(merged.idempotency.secondReservations).toBe(0);
    // Same invariants: both sales audited clean, stock at 0, one order per unit.
    expect(whole.audit).toMatchObject({ ran: true, ok: true });
    expect(merged.audit).toMatchObject({ ran: true, ok: true });
    for (const product of ['whole', 'parted']) {
      const numbers = await saleNumbers(s, product);
      expect(numbers.redisStock, product).toBe(0);
    }

    // Percentiles of the merged histogram are those of the union of the parts' histograms,
    // to the HDR histogram's precision (3 significant digits).
    const union = newHistogram();
    for (const p of parts) union.add(hdr.decodeFromCompressedBase64(p.histograms.all));
    const within = (actual: number | undefined, expected: number) =>
      expect(Math.abs((actual ?? Number.NaN) - expected)).toBeLessThanOrEqual(
        expected * 1e-3 + 1e-3,
      );
    within(merged.latencyMs?.p50, union.getValueAtPercentile(50) / 1000);
    within(merged.latencyMs?.p99, union.getValueAtPercentile(99) / 1000);
    within(merged.latencyMs?.p999, union.getValueAtPercentile(99.9) / 1000);
    expect(merged.latencyMs?.count).toBe(union.totalCount);
    // The stock the parts knew (read before the run, minus every part's orders) ends at 0.
    expect(merged.stock?.samples.at(-1)?.remaining).toBe(0);
    expect(await readFile(html, 'utf8')).toContain('id="stock-chart"');

    // What is not the parts of one sale is refused, in one line, exit 2.
    const twice = await runCli(
      ['report', 'merge', files[0] ?? '', files[0] ?? '', files[1] ?? ''],
      env,
    );
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/^fsale: .*are the same part \(1\/3\): they overlap\n$/);
    const missing = await runCli(['report', 'merge', files[0] ?? '', files[1] ?? ''], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/part 3\/3 missing/);
    const wholeFile = join(dir, 'whole.json');
    await writeFile(wholeFile, one.stdout);
    const mixed = await runCli(['report', 'merge', files[0] ?? '', wholeFile], env);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/not one sale: product/);
  });

  it('--threads 2 (real worker threads from dist/) with --follow: one summary, same counts, every order followed', async () => {
    await seed(s, { productId: 'threaded', stock: STOCK, priceCents: 100 });
    const run = await flood('threaded', ['--threads', '2', '--follow', '--poll-interval', '250ms']);
    const summary = parseSummary(run.stdout);
    expectPassedUnlessLimited(run.code, summary);
    expect(summary.load.threads).toBe(2);
    expect(summary.requests.sent).toBe(600);
    expect(summary.orders.accepted).toBe(STOCK);
    expect(summary.outcomes.sold_out.count).toBe(600 - STOCK);
    expect(summary.follow).toMatchObject({ followed: STOCK, paid: STOCK, unsettled: 0 });
    expect(summary.follow?.timeToConfirmMs?.count).toBe(STOCK);
    expect(summary.timeline.reduce((n, r) => n + r.confirmed, 0)).toBe(STOCK);
    expect(summary.stock?.source).toBe('stock_stream');
    expect(summary.audit).toMatchObject({ ran: true, ok: true });
    expect(summary.generator.cpuSeconds).toBeGreaterThan(0);
  });

  it('bad --part, --start-at and --threads are one-line usage errors (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['--part', '4/3'], /--part must be K\/N/],
      [
        ['--part', '1/3', '--seed', '1', '--start-at', '2000-01-01T00:00:00Z'],
        /--start-at .* is in the past/,
      ],
      [['--start-at', new Date(Date.now() + 25 * 3600_000).toISOString()], /more than 24 h ahead/],
      [['--start-at', '2030-01-01T00:00:00'], /ISO time with its zone/],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli(
        ['flood', '--product', 'whole', '--url', api.url, '--rate', '10', ...flags],
        env,
      );
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const noSeed = await runCli(
      ['flood', '--product', 'whole', '--url', api.url, '--rate', '10', '--part', '1/2'],
      env,
    );
    expect(noSeed.code).toBe(2);
    expect(noSeed.stderr).toMatch(/--part needs --seed/);
    const closed = await runCli(
      ['flood', '--product', 'whole', '--url', api.url, '--connections', '2', '--threads', '2'],
      env,
    );
    expect(closed.code).toBe(2);
    expect(closed.stderr).toMatch(/--threads needs the open model/);
  });
});
