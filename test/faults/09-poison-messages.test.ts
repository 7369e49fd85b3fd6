// Scenario 9: poison messages. Malformed entries are XADDed straight into the order streams
// amid a real sale: entries that are not orders at all (wrong or missing fields, wrong types),
// copies of real entries (a duplicate order id), and entries that parse but PostgreSQL refuses
// (a NUL byte in a text field, an idempotency key another order holds, a product PostgreSQL
// does not know). Every one of them ends in the product's dead-letter stream with its reason and
// its original fields (copies are recognised as duplicates and take nothing twice), every real
// order is persisted once, the worker keeps going, and the audit reports the dead letters.
import { beforeAll, describe, expect, it } from 'vitest';
import { productKeys, productsKey } from '../../src/redis/keys.js';
import { isAlive } from '../helpers/process.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit } from '../helpers/audit.js';
import { buyers, crowd, tally } from '../helpers/crowd.js';
import {
  deadLetters,
  pgOrders,
  redisStock,
  streamState,
  waitDrained,
} from '../helpers/sale-state.js';
import { NO_LOAD_SHEDDING, startOrderWorker, startServe, stopProcess } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const UUID = '0190a0a0-0000-7000-8000-000000000001';
const NOW = String(Date.now());
/** Entries that are not orders: each is dead-lettered on first sight, as `unparseable`. */
const NOT_ORDERS: string[][] = [
  ['garbage', 'x'],
  ['id', 'not-a-uuid', 'user', 'u', 'qty', '1', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', 'many', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '-1', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '0', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '1.5', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '1e400', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '1', 'at', NOW],
  ['id', UUID, 'user', '', 'qty', '1', 'key', 'k', 'at', NOW],
  ['id', UUID, 'user', 'u', 'qty', '1', 'key', 'k', 'at', 'yesterday'],
  ['id', '\u0000\uffff', 'user', '\u202e', 'qty', '\ud83d\ude00', 'key', 'k', 'at', NOW],
  ['id', UUID.toUpperCase(), 'user', 'u', 'qty', '1', 'key', 'k', 'at', NOW],
];
const ROUNDS = 4; // NOT_ORDERS injected 4 times each, spread over the sale

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

const fieldsOf = (entry: [string, string[]]) => entry[1];

describe('scenario 9: poison messages', () => {
  it('malformed entries amid a sale: dead-lettered with their reason, real orders all persisted, worker keeps going, audit reports them', async () => {
    await seed(s, { productId: 'poison', stock: 2000 });
    await seed(s, { productId: 'quarantine', stock: 100 });
    const api = await startServe(s.env, NO_LOAD_SHEDDING);
    const worker = startOrderWorker(s.env, ['--batch', '20', '--block', '100ms']);
    const poison = productKeys(s.keyPrefix, 'poison');

    // The sale, with poison injected between chunks of real buys.
    const accepted: string[] = [];
    const copies: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const chunk = buyers(`pm${round}-`, 150);
      const injected = (async () => {
        for (const fields of NOT_ORDERS) {
          await s.redis.xadd(poison.orders, '*', ...fields);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const answers = await crowd(() => api.url, 'poison', chunk, 8);
      await injected;
      expect(tally(answers)).toEqual({ '202': 150 });
      accepted.push(...answers.map((a) => a.orderId ?? ''));
      // Duplicate order ids: copies of five real entries, appended again.
      const real = await s.redis.xrevrange(poison.orders, '+', '-', 'COUNT', 200);
      const originals = real
        .map(fieldsOf)
        .filter((f) => f[0] === 'id' && accepted.includes(f[1] ?? ''))
        .slice(0, 5);
      for (const fields of originals) {
        await s.redis.xadd(poison.orders, '*', ...fields);
        copies.push(fields[1] ?? '');
      }
    }
    expect(copies).toHaveLength(ROUNDS * 5);

    // Entries that parse, and that PostgreSQL refuses.
    const q = productKeys(s.keyPrefix, 'quarantine');
    const qAnswers = await crowd(() => api.url, 'quarantine', buyers('q', 50), 8);
    expect(tally(qAnswers)).toEqual({ '202': 50 });
    await waitDrained(s, 'quarantine');
    const victim = qAnswers[0];
    // A NUL byte: a fine JavaScript string, and text PostgreSQL refuses to store.
    const refused = ['id', '0190a0a0-0000-7000-8000-0000000000aa', 'user', 'q\u0000x', 'qty', '1'];
    await s.redis.xadd(q.orders, '*', ...refused, 'key', 'k', 'at', NOW);
    const conflict = [
      'id',
      '0190a0a0-0000-7000-8000-0000000000bb',
      'user',
      victim?.user ?? '',
      'qty',
      '1',
      'key',
      victim?.key ?? '',
      'at',
      NOW,
    ];
    await s.redis.xadd(q.orders, '*', ...conflict);
    // A product Redis knows and PostgreSQL does not.
    const ghost = productKeys(s.keyPrefix, 'ghost');
    await s.redis.sadd(productsKey(s.keyPrefix), 'ghost');
    const ghostEntry = ['id', '0190a0a0-0000-7000-8000-0000000000cc', 'user', 'g', 'qty', '1'];
    await s.redis.xadd(ghost.orders, '*', ...ghostEntry, 'key', 'k', 'at', NOW);

    // The worker keeps going: a last chunk after all the poison is persisted too.
    const late = await crowd(() => api.url, 'poison', buyers('late', 100), 8);
    expect(tally(late)).toEqual({ '202': 100 });
    accepted.push(...late.map((a) => a.orderId ?? ''));

    const unparseable = NOT_ORDERS.length * ROUNDS;
    await until(
      'every entry handled (persisted, skipped as a copy, or dead-lettered)',
      async () => {
        const [p, qs, g] = await Promise.all([
          streamState(s, 'poison'),
          streamState(s, 'quarantine'),
          streamState(s, 'ghost'),
        ]);
        return (
          [p, qs, g].every((st) => st.pending === 0 && st.lag === 0) &&
          p.deadLetters === unparseable &&
          qs.deadLetters === 2 &&
          g.deadLetters === 1
        );
      },
      60_000,
    ).catch(async (error: unknown) => {
      const states = await Promise.all(
        ['poison', 'quarantine', 'ghost'].map(async (id) => {
          const st = await streamState(s, id);
          return { id, ...st, orderIds: st.orderIds.length };
        }),
      );
      throw new Error(
        `${String(error)}; ${JSON.stringify(states)}; worker: ${worker.proc.output().slice(-2500)}`,
      );
    });
    expect(isAlive(worker.proc.pid)).toBe(true);

    // Real orders: every one persisted, once; copies took nothing; stock right in PG and Redis.
    const pg = await pgOrders(s, 'poison');
    expect(pg).toMatchObject({
      rows: accepted.length,
      distinctIds: accepted.length,
      duplicateKeys: 0,
      remaining: 2000 - accepted.length,
    });
    expect(pg.ids).toEqual(new Set(accepted));
    expect(await redisStock(s, 'poison')).toBe(2000 - accepted.length);
    expect(await pgOrders(s, 'quarantine')).toMatchObject({ rows: 50, remaining: 50 });
    const ghostRows = await s.pool.query("SELECT 1 FROM orders WHERE product_id = 'ghost'");
    expect(ghostRows.rowCount).toBe(0);

    // The dead letters: each poison entry with its reason and its original fields.
    const letters = await deadLetters(s, 'poison');
    expect(letters.every((l) => l.reason === 'unparseable')).toBe(true);
    const expected = Array.from({ length: ROUNDS }, () => NOT_ORDERS).flat();
    const key = (f: string[] | null) => JSON.stringify(f);
    expect(letters.map((l) => key(l.fields)).sort()).toEqual(expected.map(key).sort());
    expect(letters.some((l) => copies.includes(l.fields?.[1] ?? ''))).toBe(false);
    const qLetters = await deadLetters(s, 'quarantine');
    expect(qLetters.map((l) => [l.reason, l.fields?.[1]]).sort()).toEqual(
      [
        ['rejected', refused[1]],
        ['idempotency_conflict', conflict[1]],
      ].sort(),
    );
    expect(qLetters.find((l) => l.reason === 'idempotency_conflict')?.detail).toContain(
      victim?.orderId ?? '?',
    );
    const gLetters = await deadLetters(s, 'ghost');
    expect(gLetters.map((l) => [l.reason, l.fields?.[1]])).toEqual([['rejected', ghostEntry[1]]]);

    // The worker counted them, logged them, and still stops cleanly.
    expect(await stopProcess(worker.proc)).toEqual({ code: 0, signal: null });
    expect(worker.last('stopped')).toMatchObject({
      deadLettered: unparseable + 3,
      persisted: accepted.length + 50,
    });
    expect(worker.proc.output()).toContain('dead-lettered');

    // The audit reports them: the dead-letter check fails with their number; the real sale's
    // other invariants hold. Parseable dead letters also count as accepted orders missing
    // from PG (the audit cannot tell them from real reservations), and the product PostgreSQL
    // does not know fails as such.
    const report = await audit(s);
    const failed = report.checks.filter((c) => !c.ok);
    expect(report.ok).toBe(false);
    expect(failed.map((c) => c.name).sort()).toEqual(
      [
        'ghost: product exists',
        'poison: no dead-lettered orders',
        'quarantine: no dead-lettered orders',
        'quarantine: conservation (Redis stock + live reservations = stock)',
        'quarantine: Redis and PG stock agree',
        'quarantine: every accepted order in PG within 0 s',
      ].sort(),
    );
    expect(failed.find((c) => c.name === 'poison: no dead-lettered orders')?.actual).toBe(
      String(unparseable),
    );
    expect(failed.find((c) => c.name === 'quarantine: no dead-lettered orders')?.actual).toBe('2');
    expect(report.checks.filter((c) => c.name.startsWith('poison:') && c.ok)).toHaveLength(
      report.checks.filter((c) => c.name.startsWith('poison:')).length - 1,
    );
    expect(await stopProcess(api.proc)).toEqual({ code: 0, signal: null });
  });
});
