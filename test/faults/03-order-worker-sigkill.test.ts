// Scenario 3: the order worker SIGKILLed at random points, 20 times in a row, while buyers keep
// coming. Each round sends a chunk of buys through the API, starts a worker and kills it:
// right before or right after a COMMIT (the FSALE_FAULT hook), or after a random delay once it
// runs. A restarted worker sometimes reuses the dead one's consumer name (it re-reads its own
// pending list) and sometimes takes a fresh one (it must XAUTOCLAIM the dead one's entries).
// The schedule comes from a seeded PRNG; the seed is printed (FSALE_FAULT_SEED replays it).
// In the end every accepted order is in PostgreSQL exactly once, the stock is right in PG and
// Redis, the stream is fully acknowledged, nothing is dead-lettered, and the audit holds.
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { buyers, crowd, tally } from '../helpers/crowd.js';
import { faultSeed, prng } from '../helpers/fault-schedule.js';
import {
  killProcess,
  NO_LOAD_SHEDDING,
  startOrderWorker,
  startServe,
  stopProcess,
  waitStarted,
  type Worker,
} from '../helpers/stack.js';
import { pgOrders, redisStock, streamState, waitDrained } from '../helpers/sale-state.js';

const ROUNDS = 20;
const STOCK = 10_000;

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

type Kill = 'before-commit' | 'after-commit' | 'random-delay';

describe('scenario 3: order worker SIGKILL', () => {
  it('killed at random points in 20 consecutive rounds of batches: nothing lost, nothing duplicated', async () => {
    const random = prng(faultSeed('scenario 3'));
    await seed(s, { productId: 'kill', stock: STOCK });
    const api = await startServe(s.env, NO_LOAD_SHEDDING);
    const workerArgs = [
      '--batch',
      '25',
      '--block',
      '100ms',
      '--claim-idle',
      '500ms',
      // The same entries are redelivered after each of up to 20 kills; the default (5) would
      // rightly dead-letter an entry stuck in such a crash loop, which is not what this proves.
      '--max-deliveries',
      '1000',
    ];

    const accepted: string[] = [];
    const rounds: Array<{ kill: Kill; consumer: string; chunk: number; heldAtKill: number }> = [];
    let buyerNo = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // A chunk of new orders, so that every worker finds batches to work on.
      const chunk = 50 + Math.floor(random() * 200);
      const list = buyers(`r${round}-`, chunk).map((b) => ({ ...b, key: `k${buyerNo++}` }));
      const answers = await crowd(() => api.url, 'kill', list, 16);
      expect(tally(answers)).toEqual({ '202': chunk });
      accepted.push(...answers.map((a) => a.orderId ?? ''));

      const draw = random();
      const kill: Kill =
        draw < 0.25 ? 'before-commit' : draw < 0.5 ? 'after-commit' : 'random-delay';
      const consumer = random() < 0.5 ? 'orders-steady' : `orders-${round}`;
      let worker: Worker;
      if (kill === 'random-delay') {
        worker = startOrderWorker(s.env, [...workerArgs, '--consumer', consumer]);
        await waitStarted(worker, `round ${round}: the worker`);
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 120)));
        await killProcess(worker.proc);
      } else {
        worker = startOrderWorker({ ...s.env, FSALE_FAULT: `orders:${kill}` }, [
          ...workerArgs,
          '--consumer',
          consumer,
        ]);
        const exit = await Promise.race([
          worker.proc.exited,
          new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 60_000)),
        ]);
        if (exit === 'hung') await killProcess(worker.proc);
        expect({ round, kill, exit }).toMatchObject({ exit: { signal: 'SIGKILL' } });
      }
      const held = (await streamState(s, 'kill')).pending;
      rounds.push({ kill, consumer, chunk, heldAtKill: held });
    }
    console.log(`scenario 3 rounds: ${JSON.stringify(rounds)}`);
    // The COMMIT hooks kill a worker with a batch delivered and unacknowledged, by construction.
    for (const r of rounds.filter((x) => x.kill !== 'random-delay')) {
      expect(r.heldAtKill).toBeGreaterThan(0);
    }
    // The kills did interrupt work in progress: entries were held unacknowledged at most kills.
    expect(rounds.filter((r) => r.heldAtKill > 0).length).toBeGreaterThanOrEqual(ROUNDS / 2);

    // A survivor takes over whatever the dead left behind, under a fresh consumer name.
    const survivor = startOrderWorker(s.env, [...workerArgs, '--consumer', 'orders-survivor']);
    await waitStarted(survivor, 'the survivor');
    await waitDrained(s, 'kill');
    expect(await stopProcess(survivor.proc)).toEqual({ code: 0, signal: null });

    const pg = await pgOrders(s, 'kill');
    expect(accepted).toHaveLength(new Set(accepted).size);
    expect(pg).toMatchObject({
      rows: accepted.length,
      distinctIds: accepted.length,
      duplicateKeys: 0,
      remaining: STOCK - accepted.length,
    });
    expect(pg.ids).toEqual(new Set(accepted));
    expect(await redisStock(s, 'kill')).toBe(STOCK - accepted.length);
    const stream = await streamState(s, 'kill');
    expect(stream).toMatchObject({ length: accepted.length, pending: 0, lag: 0, deadLetters: 0 });
    expectAuditOk(await audit(s));
    expect(await stopProcess(api.proc)).toEqual({ code: 0, signal: null });
  });
});
