// Scenario 16 — a hot product's stock split over 3 shards on the 3 masters of a local Redis
// Cluster, all of it gathered on one shard first; two API processes and an order worker as real processes. Mid-sale one API process
// is SIGKILLed (its buyers retry on the other with the same key, as a load balancer would send
// them), and the order worker is SIGKILLed and replaced. More buyers than units, so the home
// shards other than the one holding the units borrow between shards while processes die.
//
// Afterwards: every buyer got one decision, exactly the stock was accepted (none oversold, none
// left unsold while someone was told sold out), every 202 is in PostgreSQL, reconcile completes
// any move a killed process left in transit, and the audit holds.
import { beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../src/infra/local-cluster.js';
import type { Redis } from '../../src/redis/client.js';
import { readLayout, readStockTotal } from '../../src/redis/sale-state.js';
import { seedProduct } from '../../src/sale/seed.js';
import { audit } from '../helpers/audit.js';
import { gatherUnits } from '../helpers/sale-state.js';
import { buyOnce, buyers, type BuyAnswer, type Buyer } from '../helpers/crowd.js';
import { useLocalCluster } from '../helpers/local-cluster.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import {
  NO_LOAD_SHEDDING,
  killProcess,
  reconcileOnce,
  startOrderWorker,
  startServe,
  stopProcess,
  waitStarted,
  type Worker,
} from '../helpers/stack.js';
import { sleep, until } from '../helpers/wait.js';

const STOCK = 600;
const BUYERS = 1_500;
const LANES = 24;

let s: TestServices;
let cluster: LocalCluster;
let redis: Redis;

beforeAll(async () => {
  s = await useTestServices();
  ({ cluster, redis } = await useLocalCluster(s));
});

describe('scenario 16: API and order worker SIGKILLed during a sale of a stock-sharded product', () => {
  it('sells exactly the stock, loses no acknowledged buy, and the audit holds', async () => {
    const productId = 'sharded-hot';
    await seedProduct(
      { pool: s.pool, redis, keyPrefix: s.keyPrefix },
      { productId, stock: STOCK, perUserLimit: 1, stockShards: 3 },
    );
    // Every unit on shard 0: two buyers in three start at the tail, so units move between
    // shards all through the sale, while processes die.
    await gatherUnits(redis, await readLayout(redis, s.keyPrefix, productId), 0);
    const env = { ...s.env, REDIS_URL: cluster.url };
    const args = ['--rate-limit', '0', ...NO_LOAD_SHEDDING];
    const apis = [await startServe(env, args), await startServe(env, args)];
    let worker: Worker = startOrderWorker(env, ['--block', '100ms']);
    await waitStarted(worker);
    const list = buyers('sh-', BUYERS);
    const seen: BuyAnswer[] = [];
    const decided: BuyAnswer[] = [];
    let alive = [0, 1];
    try {
      // A buyer retries "come back later" and a dead connection with the same key, on a
      // live API process.
      const decide = async (buyer: Buyer, lane: number) => {
        for (let attempt = 0; attempt < 200; attempt++) {
          const api = apis[alive[(lane + attempt) % alive.length] ?? 0];
          const answer = await buyOnce(api?.url ?? '', productId, buyer);
          seen.push(answer);
          if (![0, 429, 503].includes(answer.status)) return answer;
          await sleep(20);
        }
        throw new Error(`${buyer.key}: no decision after 200 attempts`);
      };
      let next = 0;
      let apiKilled = false;
      let workerKilled = false;
      const lane = async (index: number) => {
        while (next < list.length) {
          const buyer = list[next++];
          if (buyer === undefined) break;
          decided.push(await decide(buyer, index));
          if (!apiKilled && decided.length >= BUYERS / 5) {
            apiKilled = true;
            alive = [1];
            await killProcess(apis[0]?.proc ?? worker.proc);
          }
          if (!workerKilled && decided.length >= BUYERS / 3) {
            workerKilled = true;
            await killProcess(worker.proc);
            worker = startOrderWorker(env, ['--block', '100ms']);
          }
        }
      };
      await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i)));

      expect(decided).toHaveLength(BUYERS);
      expect(
        [...new Set(seen.map((a) => a.status))].filter((c) => ![0, 202, 409, 503].includes(c)),
      ).toEqual([]);
      const accepted = new Set(
        decided.flatMap((a) => (a.orderId === undefined ? [] : [a.orderId])),
      );
      const soldOut = decided.filter((a) => a.status === 409 && a.body.includes('sold_out'));
      // Exactly the stock: every one of the 900 told "sold out" was told so once none was left.
      expect(accepted.size).toBe(STOCK);
      const otherwise = decided.filter((a) => a.status !== 202 && !a.body.includes('sold_out'));
      expect(otherwise.map((a) => `${a.status} ${a.body}`)).toEqual([]);
      expect(soldOut).toHaveLength(BUYERS - STOCK);

      await reconcileOnce(env);
      const layout = await readLayout(redis, s.keyPrefix, productId);
      expect(await readStockTotal(redis, layout)).toBe(0);
      await until(
        'every acknowledged order persisted',
        async () => {
          const { rows } = await s.pool.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM orders WHERE product_id = $1',
            [productId],
          );
          return rows[0]?.n === STOCK;
        },
        120_000,
      );
      const { rows } = await s.pool.query<{ id: string }>(
        'SELECT id::text AS id FROM orders WHERE product_id = $1',
        [productId],
      );
      const persisted = new Set(rows.map((r) => r.id));
      expect([...accepted].filter((id) => !persisted.has(id))).toEqual([]);
      const report = await audit({ ...s, redis }, undefined, productId);
      expect(report.checks.filter((c) => !c.ok)).toEqual([]);
      console.log(
        `scenario 16: ${accepted.size} accepted, ${soldOut.length} sold out, ` +
          `${seen.filter((a) => a.status === 0).length} connections lost to the killed API, ` +
          `${seen.filter((a) => a.replayed).length} replays; audit OK`,
      );
    } finally {
      await stopProcess(worker.proc);
      for (const api of apis) await stopProcess(api.proc);
    }
  });
});
