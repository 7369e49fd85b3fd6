// Scenario 15 — the Redis Cluster master holding the product's slot is SIGKILLed mid-sale. A
// local cluster (3 masters + 3 replicas, cluster-node-timeout 1 s) runs a sale with the API and
// the order worker as real processes. While the slot has no master, buys must get 503 with
// Retry-After (never 500, never a 202 that is lost afterwards); once the replica is promoted,
// the clients find it by themselves and the sale goes on. Buyers retry a 503 with the same key.
//
// With `serve --durability replica` no acknowledged buy may be lost across the failover: every
// 202 has its order in PostgreSQL. (The promoted master has no replica until the killed node,
// restarted as a supervisor would, rejoins as its replica: until then such buys answer 503
// outcome_unknown and the buyers' retries with the same key wait.) Without it (`--durability none`), the scenario measures and
// reports how many acknowledged buys the failover lost (replication is asynchronous).
import { beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../src/infra/local-cluster.js';
import type { Redis } from '../../src/redis/client.js';
import { productKeys } from '../../src/redis/keys.js';
import { keySlot } from '../../src/redis/slots.js';
import { seedProduct } from '../../src/sale/seed.js';
import { audit } from '../helpers/audit.js';
import { buyOnce, buyers, type BuyAnswer, type Buyer } from '../helpers/crowd.js';
import { useLocalCluster } from '../helpers/local-cluster.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import {
  NO_LOAD_SHEDDING,
  startOrderWorker,
  startServe,
  stopProcess,
  waitStarted,
  type Worker,
} from '../helpers/stack.js';
import { sleep, until } from '../helpers/wait.js';

const BUYERS = 1_500;
const LANES = 24;

let s: TestServices;
let cluster: LocalCluster;
let redis: Redis;

beforeAll(async () => {
  s = await useTestServices();
  ({ cluster, redis } = await useLocalCluster(s, { nodeTimeoutMs: 1_000 }));
});

/** A buyer that honours "come back later": retries 503/429 with the same key until decided. */
async function buyDecided(url: string, productId: string, buyer: Buyer, seen: BuyAnswer[]) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const answer = await buyOnce(url, productId, buyer);
    seen.push(answer);
    if (answer.status !== 503 && answer.status !== 429 && answer.status !== 0) return answer;
    await sleep(50);
  }
  throw new Error(`${buyer.key}: no decision after 200 attempts`);
}

async function saleThroughFailover(durability: 'none' | 'replica') {
  const productId = `fo-${durability}`;
  await seedProduct(
    { pool: s.pool, redis, keyPrefix: s.keyPrefix },
    { productId, stock: BUYERS, perUserLimit: 1 },
  );
  const env = { ...s.env, REDIS_URL: cluster.url };
  const api = await startServe(env, [
    '--durability',
    durability,
    '--rate-limit',
    '0',
    ...NO_LOAD_SHEDDING,
  ]);
  const worker: Worker = startOrderWorker(env, ['--block', '100ms']);
  await waitStarted(worker);
  const slot = keySlot(productKeys(s.keyPrefix, productId).stock);
  const master = await cluster.masterOf(slot);
  try {
    const list = buyers(`${durability}-`, BUYERS);
    const seen: BuyAnswer[] = [];
    const decided: BuyAnswer[] = [];
    let next = 0;
    let killed = false;
    let rejoined: Promise<void> | undefined;
    const lane = async () => {
      while (next < list.length) {
        const buyer = list[next++];
        if (buyer === undefined) break;
        decided.push(await buyDecided(api.url, productId, buyer, seen));
        if (!killed && decided.length >= BUYERS / 4) {
          killed = true;
          process.kill(master.pid, 'SIGKILL');
          // What a supervisor does: start the dead node again once its replica has taken over;
          // it rejoins as the new master's replica (which --durability replica waits for).
          rejoined = (async () => {
            await until(
              'the replica to be promoted',
              async () => (await cluster.masterOf(slot)).port !== master.port,
              60_000,
              100,
            );
            await cluster.restart(master);
          })();
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    await rejoined;
    const promoted = await cluster.masterOf(slot);
    expect(promoted.port).not.toBe(master.port);

    // Never a 500, never anything but a decision or "come back later".
    const statuses = new Set(seen.map((a) => a.status));
    expect([...statuses].filter((code) => ![202, 409, 503, 0].includes(code))).toEqual([]);
    for (const a of seen.filter((x) => x.status === 503)) {
      expect(a.body).toMatch(/urn:fsale:problem:(unavailable|outcome_unknown|overloaded)/);
    }
    const accepted = new Set(decided.flatMap((a) => (a.orderId === undefined ? [] : [a.orderId])));
    expect(accepted.size).toBeGreaterThan(0);

    // Everything the worker can still see persisted; then: which 202s are not in PostgreSQL?
    await until(
      'the order stream drained on the promoted master',
      async () => {
        const [count] = (await redis.xpending(
          productKeys(s.keyPrefix, productId).orders,
          'persist',
        )) as [number];
        const info = (await redis.xinfo(
          'GROUPS',
          productKeys(s.keyPrefix, productId).orders,
        )) as unknown[][];
        const fields = info[0] ?? [];
        const lag = fields[fields.indexOf('lag') + 1];
        return count === 0 && lag === 0;
      },
      120_000,
    );
    const { rows } = await s.pool.query<{ id: string }>(
      'SELECT id::text AS id FROM orders WHERE product_id = $1',
      [productId],
    );
    const persisted = new Set(rows.map((r) => r.id));
    const lost = [...accepted].filter((id) => !persisted.has(id));
    const report = await audit({ ...s, redis }, undefined, productId);
    console.log(
      `scenario 15 (--durability ${durability}): ${accepted.size} acknowledged, ${lost.length} lost in the failover; ` +
        `${seen.filter((a) => a.status === 503).length} answers 503 while the slot moved; ` +
        `audit ${
          report.ok
            ? 'OK'
            : `failed: ${report.checks
                .filter((c) => !c.ok)
                .map((c) => c.name)
                .join('; ')}`
        }`,
    );
    return { accepted: accepted.size, lost: lost.length, report };
  } finally {
    await stopProcess(worker.proc);
    await stopProcess(api.proc);
  }
}

describe('scenario 15: the Redis Cluster master of the product is killed mid-sale', () => {
  it('with --durability replica no acknowledged buy is lost, and the audit holds', async () => {
    const { lost, report } = await saleThroughFailover('replica');
    expect(lost).toBe(0);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
  });

  it('with --durability none the loss is measured and reported', async () => {
    const { accepted, lost } = await saleThroughFailover('none');
    expect(accepted).toBeGreaterThan(0);
    expect(lost).toBeGreaterThanOrEqual(0);
  });
});
