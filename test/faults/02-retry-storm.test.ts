// Scenario 2: double clicks and a retry storm. Every buyer has three Idempotency-Keys and sends
// each of them three times: twice at once (a double click, possibly landing on the two API
// processes) and once more after both answered (a retry). Exactly one reservation per
// (user, key) may exist; for an accepted key every other answer is a replay, with
// `Idempotent-Replayed: true` and the very bytes of the first answer; a refused key recorded
// nothing, so each of its answers is a fresh refusal (README, the idempotency contract); and
// the stock is conserved.
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { buyers, buyOnce, tally, type BuyAnswer, type Buyer } from '../helpers/crowd.js';
import { pgOrders, redisStock, streamState, waitDrained } from '../helpers/sale-state.js';
import { startOrderWorker, startServe, stopProcess } from '../helpers/stack.js';

const USERS = 1_500;
const STOCK = 2_000; // less than the 3,000 keys within the limit: the storm runs into the sell-out
const PER_USER = 2;
const IN_FLIGHT = 64; // buyers at once, each with up to 2 requests in flight

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

/** Answers that decided nothing (429, 503: before the buy script ran), seen and retried. */
const comeBackLater: BuyAnswer[] = [];

/** A client that honours "come back later": retries 429/503 (bounded) until it gets a decision. */
async function buyAnswered(url: string, buyer: Buyer): Promise<BuyAnswer> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const answer = await buyOnce(url, 'storm', buyer);
    if (answer.status !== 429 && answer.status !== 503) return answer;
    comeBackLater.push(answer);
    await new Promise((resolve) => setTimeout(resolve, 50 + 10 * attempt));
  }
  throw new Error(`${buyer.key}: still told to come back later after 50 attempts`);
}

describe('scenario 2: double click and retry storm', () => {
  it('each key sent 3 times (2 at once, then 1 after): one reservation per (user, key), replays identical, stock conserved', async () => {
    await seed(s, { productId: 'storm', stock: STOCK, perUserLimit: PER_USER });
    const api = await startServe(s.env, ['--api-workers', '2']);
    const orders = startOrderWorker(s.env);

    // Each buyer's three keys, one after the other; each key: a double click, then a retry.
    const pairs: Array<{ buyer: Buyer; answers: BuyAnswer[] }> = [];
    const people = buyers('rs', USERS);
    let next = 0;
    const lane = async () => {
      while (next < people.length) {
        const person = people[next++];
        if (person === undefined) break;
        for (const key of [`${person.user}-a`, `${person.user}-b`, `${person.user}-c`]) {
          const buyer = { ...person, key };
          const clicks = await Promise.all([
            buyAnswered(api.url, buyer),
            buyAnswered(api.url, buyer),
          ]);
          const retry = await buyAnswered(api.url, buyer);
          pairs.push({ buyer, answers: [...clicks, retry] });
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    const all = pairs.flatMap((p) => p.answers);
    console.log(
      `scenario 2: ${all.length} decided answers: ${JSON.stringify(tally(all))}; retried after 429/503: ${JSON.stringify(tally(comeBackLater))}`,
    );
    expect(comeBackLater.every((a) => a.status === 429 || a.status === 503)).toBe(true);

    expect(pairs).toHaveLength(USERS * 3);
    expect(Object.keys(tally(all)).sort()).toEqual(['202', '409']);
    for (const { buyer, answers } of pairs) {
      const fresh = answers.filter((a) => !a.replayed);
      const first = fresh[0];
      if (first?.status === 202) {
        // One accept, two replays of it, byte for byte; the retry after both answered too.
        expect({ key: buyer.key, fresh: fresh.length }).toEqual({ key: buyer.key, fresh: 1 });
        for (const a of answers) {
          expect({ key: buyer.key, status: a.status, body: a.body }).toEqual({
            key: buyer.key,
            status: 202,
            body: first.body,
          });
        }
        expect(answers[2]?.replayed).toBe(true);
      } else {
        // A refusal reserved nothing and recorded nothing: every answer is decided anew, and
        // with no unit ever given back here, every one is a refusal.
        expect(answers.map((a) => [a.status, a.replayed])).toEqual(answers.map(() => [409, false]));
      }
    }

    const acceptedIds = pairs
      .map((p) => p.answers[0])
      .filter((a) => a?.status === 202)
      .map((a) => a?.orderId ?? '');
    expect(acceptedIds).toHaveLength(STOCK);
    expect(new Set(acceptedIds).size).toBe(STOCK);
    // Refusals are sold_out or limit_reached, decided once per key and replayed.
    const refusals = new Set(
      pairs
        .map((p) => p.answers[0])
        .filter((a) => a?.status === 409)
        .map((a) => (JSON.parse(a?.body ?? '{}') as { type: string }).type),
    );
    expect([...refusals].sort()).toEqual([
      expect.stringContaining('limit_reached'),
      expect.stringContaining('sold_out'),
    ]);

    // Redis: one stream entry per accepted (user, key), stock exhausted, never below zero.
    const stream = await streamState(s, 'storm');
    expect(stream.orderIds.sort()).toEqual([...acceptedIds].sort());
    expect(await redisStock(s, 'storm')).toBe(0);

    // PostgreSQL: the same orders, once each, one per (user, key), at most 2 per user.
    await waitDrained(s, 'storm');
    const pg = await pgOrders(s, 'storm');
    expect(pg).toMatchObject({ rows: STOCK, distinctIds: STOCK, duplicateKeys: 0, remaining: 0 });
    expect(pg.ids).toEqual(new Set(acceptedIds));
    const perUser = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM orders WHERE product_id = 'storm' GROUP BY user_id HAVING count(*) > $1",
      [PER_USER],
    );
    expect(perUser.rows).toEqual([]);
    const keys = await s.pool.query<{ user_id: string; idempotency_key: string }>(
      "SELECT user_id, idempotency_key FROM orders WHERE product_id = 'storm'",
    );
    const acceptedPairs = new Set(
      pairs
        .filter((p) => p.answers[0]?.status === 202)
        .map((p) => `${p.buyer.user} ${p.buyer.key}`),
    );
    expect(new Set(keys.rows.map((r) => `${r.user_id} ${r.idempotency_key}`))).toEqual(
      acceptedPairs,
    );

    expectAuditOk(await audit(s));
    expect(await stopProcess(orders.proc)).toEqual({ code: 0, signal: null });
    expect(await stopProcess(api.proc)).toEqual({ code: 0, signal: null });
  });
});
