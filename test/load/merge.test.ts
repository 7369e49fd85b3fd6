import * as hdr from 'hdr-histogram-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlood } from '../../src/load/flood.js';
import { defaultThreads, sumProgress, threadOptions } from '../../src/load/flood-thread.js';
import { mergeEncoded, newHistogram, recordMs, encodeHistogram } from '../../src/load/latency.js';
import { mergeParts, mergeSummaries } from '../../src/load/merge.js';
import { mergeStock, mergeTimelines } from '../../src/load/merge-series.js';
import { asPart, checkParts, MergeError } from '../../src/load/part-checks.js';
import type { TimelineRow } from '../../src/load/recorder.js';
import { parseStartAt, SliceSyntaxError } from '../../src/load/slices.js';
import { stockFromOrders, type FloodSummary } from '../../src/load/summary.js';
import { parseThreshold } from '../../src/load/thresholds.js';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import type { FloodProgress } from '../../src/load/flood.js';
import { engineOptions } from '../helpers/engine-options.js';
import { accepted, problem, startStallServer, type StallServer } from '../helpers/stall-server.js';

const row = (second: number, sent: number, p99: number | null, inFlightMax = 1): TimelineRow => ({
  second,
  target: sent,
  sent,
  answered: sent,
  outcomes: Object.fromEntries(
    OUTCOME_CLASSES.map((c) => [c, c === 'accepted' ? sent : 0]),
  ) as TimelineRow['outcomes'],
  p50: p99,
  p99,
  max: p99,
  confirmed: 0,
  sendLagMax: sent / 10,
  inFlightMax,
});

const encoded = (...ms: number[]) => {
  const h = newHistogram();
  for (const v of ms) recordMs(h, v);
  return encodeHistogram(h);
};

describe('--threads: the default, and each thread’s share', () => {
  it('one thread per core but one, at most 4, at least 1', () => {
    expect([1, 2, 3, 4, 5, 8, 64].map((cores) => defaultThreads(cores))).toEqual([
      1, 1, 2, 3, 4, 4, 4,
    ]);
  });

  it('thread i of n takes sub-slice i of the part, and a share of the in-flight and stream budgets', () => {
    const base = {
      ...engineOptions('http://127.0.0.1:1', {
        kind: 'closed',
        connections: 1,
        durationSeconds: 1,
        requests: undefined,
      }),
      slice: { index: 1, count: 3 },
    };
    const t = threadOptions(
      {
        ...base,
        maxInFlight: 1000,
        follow: { maxStreams: 200, pollIntervalMs: 1000, pollConcurrency: 16, timeoutMs: 1000 },
      },
      1,
      3,
    );
    expect(t.slice).toEqual({ index: 4, count: 9 });
    expect(t.maxInFlight).toBe(334);
    expect(t.follow).toMatchObject({ maxStreams: 67, pollConcurrency: 6 });
    expect(t.audit).toBeUndefined();
  });

  it('progress lines add up the threads, in the earliest phase any thread is in', () => {
    const p = (phase: FloodProgress['phase'], sent: number): FloodProgress => ({
      phase,
      elapsedSeconds: sent / 100,
      targetRate: 100,
      sentLastSecond: sent,
      p99LastSecond: sent,
      sent,
      answered: sent,
      inFlight: 1,
      counts: Object.fromEntries(OUTCOME_CLASSES.map((c) => [c, sent])) as FloodProgress['counts'],
      orders: sent,
      following: null,
    });
    const total = sumProgress([p('follow', 100), undefined, p('load', 50)]);
    expect(total).toMatchObject({
      phase: 'load',
      sent: 150,
      targetRate: 200,
      p99LastSecond: 100,
      inFlight: 2,
      following: null,
    });
    expect(total?.counts.sold_out).toBe(150);
  });
});

describe('--start-at', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  it('takes an ISO time with its zone, in the future, at most 24 h ahead', () => {
    expect(parseStartAt('2026-12-01T12:00:30Z', now)).toBe(now + 30_000);
    expect(parseStartAt('2026-12-01T13:00:30+01:00', now)).toBe(now + 30_000);
    expect(() => parseStartAt('2026-12-01T11:59:59Z', now)).toThrow(/in the past/);
    expect(() => parseStartAt('2026-12-02T12:00:01Z', now)).toThrow(/more than 24 h ahead/);
    // Without a zone the time would mean something else on every machine.
    expect(() => parseStartAt('2026-12-01T12:00:30', now)).toThrow(SliceSyntaxError);
    expect(() => parseStartAt('soon', now)).toThrow(SliceSyntaxError);
  });
});

describe('merging timelines and stock', () => {
  it('rows add bucket by bucket, aligned on each part’s start; latency from the merged histograms', () => {
    const merged = mergeTimelines(
      [
        { rows: [row(0, 10, 5), row(1, 10, 7)], encoded: [encoded(5), encoded(7)] },
        { rows: [row(0, 4, 100, 3)], encoded: [encoded(1, 100)] },
      ],
      [0, 1],
      1000,
    );
    expect(merged.rows.map((r) => [r.second, r.sent, r.answered, r.outcomes.accepted])).toEqual([
      [0, 10, 10, 10],
      [1, 14, 14, 14],
    ]);
    expect(merged.rows[1]).toMatchObject({ max: 100, sendLagMax: 1, inFlightMax: 4, target: 14 });
    const second = hdr.decodeFromCompressedBase64(merged.encoded[1] ?? '');
    expect(second.totalCount).toBe(3);
  });

  it('stock from orders: each part’s orders come off the one stock read before the run', () => {
    const initial = 10;
    const a = {
      source: 'orders' as const,
      initial,
      samples: stockFromOrders(initial, [50, 250], 1),
    };
    const b = {
      source: 'orders' as const,
      initial,
      samples: stockFromOrders(initial, [120, 130, 260], 2),
    };
    expect(mergeStock([a, b], [0, 0])?.samples).toEqual([
      { atMs: 0, remaining: 9 },
      { atMs: 100, remaining: 5 },
      { atMs: 200, remaining: 2 },
    ]);
  });

  it('stock from the stream: the union of what every part saw', () => {
    const a = {
      source: 'stock_stream' as const,
      initial: 5,
      samples: [
        { atMs: 10, remaining: 4 },
        { atMs: 300, remaining: 1 },
      ],
    };
    const b = {
      source: 'stock_stream' as const,
      initial: 5,
      samples: [{ atMs: 150, remaining: 3 }],
    };
    expect(mergeStock([a, b], [0, 100])?.samples).toEqual([
      { atMs: 10, remaining: 4 },
      { atMs: 250, remaining: 3 },
      { atMs: 300, remaining: 1 },
    ]);
  });
});

describe('parts of one sale, merged', () => {
  let server: StallServer;
  let parts: FloodSummary[];
  let whole: FloodSummary;
  const users = 300;
  beforeAll(async () => {
    // 202 for a user's first buy, 409 sold_out after the first 100 buys: counts depend on how
    // many buys there were, not on which part sent them.
    const sale = () =>
      startStallServer({
        stallAfterMs: 1e9,
        stallMs: 0,
        answer: (n) => (n <= 100 ? accepted(n) : problem('sold_out', 409)),
      });
    server = await sale();
    const options = (slice: { index: number; count: number }) => ({
      ...engineOptions(server.url, {
        kind: 'open',
        shape: { rate: 300, rampSeconds: 0, spikes: [] },
        arrivals: 'poisson',
        durationSeconds: undefined,
        requests: 450,
      }),
      users,
      seed: 9,
      slice,
      maxSendLagMs: 60_000,
    });
    parts = [];
    for (let index = 0; index < 3; index++)
      parts.push(await runFlood(options({ index, count: 3 })));
    // The same sale again, on a fresh stand-in, by one flood of three threads.
    await server.close();
    server = await sale();
    whole = await runFlood({ ...options({ index: 0, count: 1 }), threads: 3 });
  });
  afterAll(() => server.close());

  const named = (list: FloodSummary[]) =>
    list.map((summary, i) => ({ name: `p${i + 1}.json`, summary }));

  it('the parts hold every arrival of the sale once, and merge into its counts', () => {
    expect(parts.map((p) => p.load.slice.index)).toEqual([0, 1, 2]);
    expect(parts.reduce((n, p) => n + p.requests.sent, 0)).toBe(450);
    const merged = mergeParts(named(parts), [parseThreshold('sent=450', OUTCOME_CLASSES)]);
    expect(merged.requests.sent).toBe(450);
    expect(merged.load.slice).toEqual({ index: 0, count: 1 });
    expect(merged.parts?.map((p) => p.slice.index)).toEqual([0, 1, 2]);
    expect(OUTCOME_CLASSES.reduce((n, c) => n + merged.outcomes[c].count, 0)).toBe(450);
    expect(merged.rate.target).toBeGreaterThan(0);
    expect(merged.timeline.reduce((n, r) => n + r.sent, 0)).toBe(450);
    expect(merged.thresholds[0]).toMatchObject({ ok: true, actual: 450 });
    expect(merged.verdict.status).toBe('pass');
  });

  it('merged percentiles are the union’s: every bucket of every part is kept', () => {
    const merged = mergeParts(named(parts), []);
    const union = newHistogram();
    for (const p of parts) union.add(hdr.decodeFromCompressedBase64(p.histograms.all));
    for (const q of [50, 90, 99, 99.9] as const) {
      const key = q === 50 ? 'p50' : q === 90 ? 'p90' : q === 99 ? 'p99' : 'p999';
      expect(merged.latencyMs?.[key]).toBe(Math.round(union.getValueAtPercentile(q)) / 1000);
    }
    expect(merged.latencyMs?.count).toBe(union.totalCount);
    expect(merged.latencyMs?.max).toBe(Math.max(...parts.map((p) => p.latencyMs?.max ?? 0)));
    // And the merged histogram itself rides along, for a merge of merges.
    expect(mergeEncoded([merged.histograms.all]).totalCount).toBe(union.totalCount);
  });

  it('--threads 3 is the same split, run at once: same arrivals, merged the same way', () => {
    expect(whole.load.threads).toBe(3);
    expect(whole.requests.sent).toBe(450);
    expect(whole.outcomes.accepted.count).toBe(100);
    expect(whole.outcomes.sold_out.count).toBe(350);
    expect(whole.orders.accepted).toBe(100);
    expect(whole.histograms.timeline.length).toBe(whole.timeline.length);
    expect(whole.timelineFine?.bucketMs).toBe(100);
    expect(whole.timelineFine?.rows.reduce((n, r) => n + r.sent, 0)).toBe(450);
  });

  it('refuses what is not the parts of one sale, each with a one-line reason', () => {
    const [a, b, c] = named(parts);
    if (a === undefined || b === undefined || c === undefined) throw new Error('three parts');
    expect(() => checkParts([a, b])).toThrow(/part 3\/3 missing/);
    expect(() => checkParts([a, b, c, { ...a, name: 'again.json' }])).toThrow(
      /p1.json and again.json are the same part \(1\/3\): they overlap/,
    );
    const otherShape = {
      name: 'x.json',
      summary: { ...c.summary, load: { ...c.summary.load, requests: 900 } },
    };
    expect(() => checkParts([a, b, otherShape])).toThrow(
      /not one sale: load.requests is 450 vs 900/,
    );
    const otherProduct = {
      name: 'y.json',
      summary: { ...c.summary, target: { ...c.summary.target, productId: 'p2' } },
    };
    expect(() => checkParts([a, b, otherProduct])).toThrow(/not one sale: product p1/);
    const otherSplit = {
      name: 'z.json',
      summary: { ...c.summary, load: { ...c.summary.load, slice: { index: 2, count: 4 } } },
    };
    expect(() => checkParts([a, b, otherSplit])).toThrow(/split the sale differently/);
    expect(() => asPart('old.json', { ...a.summary, histograms: undefined })).toThrow(
      /no lossless histograms/,
    );
    expect(() => asPart('v2.json', { ...a.summary, version: 2 })).toThrow(MergeError);
    expect(() => asPart('w.json', [1, 2])).toThrow(/not the --json summary/);
  });

  it('a limited part makes the merged run inconclusive, and says which part', () => {
    const [a, b, c] = parts;
    if (a === undefined || b === undefined || c === undefined) throw new Error('three parts');
    const limited = {
      ...b,
      generator: { ...b.generator, limited: true, reasons: ['it fell behind'] },
    };
    const merged = mergeSummaries([a, limited, c], (s) => `part ${s.load.slice.index + 1}/3`);
    expect(merged.generator.reasons).toEqual(['part 2/3: it fell behind']);
  });
});
