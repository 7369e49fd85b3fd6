// Scenario 12: graceful shutdown under load. A flood is spread over two API processes; one of
// them gets SIGTERM in the middle of it. It must finish the requests in flight, answer the
// ones that still reach it while closing (503) or refuse the connection, and exit 0. Clients
// get an answer or a refused/reset connection, never a 202 without a reservation: every 202
// is in the order stream and, after the worker drains, in PostgreSQL. A client that got no
// answer retries the same Idempotency-Key on the other process and learns the truth, so the
// stream holds exactly the orders the clients know of.
import { beforeAll, describe, expect, it } from 'vitest';
import { descendants } from '../helpers/process.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { seed } from '../helpers/sale.js';
import { audit, expectAuditOk } from '../helpers/audit.js';
import { buyers, buyOnce, crowd, tally, type BuyAnswer } from '../helpers/crowd.js';
import { pgOrders, redisStock, streamState, waitDrained } from '../helpers/sale-state.js';
import { NO_LOAD_SHEDDING, startOrderWorker, startServe, stopProcess } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const BUYERS = 6_000;
const STOCK = 100_000;
const NETWORK_ERRORS = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'socket hang up'];

let s: TestServices;
beforeAll(async () => {
  s = await useTestServices();
});

describe('scenario 12: graceful shutdown under load', () => {
  it('SIGTERM to an API process mid-flood: in-flight requests finish, it exits 0, no 202 without a reservation', async () => {
    await seed(s, { productId: 'drain', stock: STOCK, perUserLimit: 1 });
    const target = await startServe(s.env, NO_LOAD_SHEDDING);
    const survivor = await startServe(s.env, NO_LOAD_SHEDDING);
    const orders = startOrderWorker(s.env);

    const list = buyers('gs', BUYERS);
    let terminatedAt = -1;
    const answers = await crowd(
      (i) => (i % 2 === 0 ? target.url : survivor.url),
      'drain',
      list,
      64,
      (done) => {
        if (done === Math.floor(BUYERS / 4) && terminatedAt < 0) {
          terminatedAt = done;
          target.proc.child.kill('SIGTERM');
        }
      },
    );
    const exit = await target.proc.exited;
    const counts = tally(answers);
    console.log(`scenario 12: SIGTERM after ${terminatedAt} answers; ${JSON.stringify(counts)}`);

    // The terminated process finished what it had and exited 0.
    expect(exit).toEqual({ code: 0, signal: null });
    expect(target.proc.output()).toContain('SIGTERM received');
    // Answers: accepted, or "closing" (503), or the connection refused/reset; nothing else.
    for (const a of answers) {
      if (a.status === 0) expect(NETWORK_ERRORS).toContain(a.error);
      else expect([202, 503]).toContain(a.status);
    }
    // The flood outlived the process: later requests to it were refused.
    expect(counts['error:ECONNREFUSED'] ?? 0).toBeGreaterThan(0);
    // The survivor answered every request sent to it.
    const toSurvivor = answers.filter((_, i) => i % 2 === 1);
    expect(toSurvivor.every((a) => a.status === 202)).toBe(true);

    // Every 202 has its reservation in the stream.
    const accepted = answers.filter((a) => a.status === 202).map((a) => a.orderId ?? '');
    const stream = await streamState(s, 'drain');
    const inStream = new Set(stream.orderIds);
    expect(accepted.filter((id) => !inStream.has(id))).toEqual([]);

    // Clients without an answer (or told 503) retry the same key on the survivor: a request
    // that reserved before its connection broke is replayed, one that did not reserves now.
    const unanswered = answers.filter((a) => a.status !== 202);
    const retried: BuyAnswer[] = [];
    for (const a of unanswered) {
      const buyer = list.find((b) => b.user === a.user);
      if (buyer === undefined) throw new Error(`no buyer ${a.user}`);
      retried.push(await buyOnce(survivor.url, 'drain', buyer));
    }
    expect(retried.every((r) => r.status === 202)).toBe(true);
    const known = new Set([...accepted, ...retried.map((r) => r.orderId ?? '')]);
    console.log(
      `scenario 12: ${unanswered.length} retried, ${retried.filter((r) => r.replayed).length} of them had reserved before their connection broke`,
    );

    // The stream holds exactly the orders the clients know of; all of them reach PostgreSQL.
    await waitDrained(s, 'drain');
    const after = await streamState(s, 'drain');
    expect(after.orderIds.length).toBe(BUYERS);
    expect(new Set(after.orderIds)).toEqual(known);
    const pg = await pgOrders(s, 'drain');
    expect(pg).toMatchObject({ rows: BUYERS, distinctIds: BUYERS, duplicateKeys: 0 });
    expect(pg.ids).toEqual(known);
    expect(pg.remaining).toBe(STOCK - BUYERS);
    expect(await redisStock(s, 'drain')).toBe(STOCK - BUYERS);
    expectAuditOk(await audit(s));

    expect(await stopProcess(survivor.proc)).toEqual({ code: 0, signal: null });
    expect(await stopProcess(orders.proc)).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM to one process of `serve --api-workers 2` mid-flood: it exits 0, the other keeps answering, no 202 without a reservation', async () => {
    await seed(s, { productId: 'cluster', stock: STOCK, perUserLimit: 1 });
    const api = await startServe(s.env, ['--api-workers', '2', ...NO_LOAD_SHEDDING]);
    const orders = startOrderWorker(s.env);
    const workers = descendants(api.proc.pid);
    expect(workers.length).toBeGreaterThanOrEqual(2);
    const victim = workers[0] ?? -1;

    const list = buyers('cl', 4_000);
    const answers = await crowd(
      () => api.url,
      'cluster',
      list,
      64,
      (done) => {
        if (done === 1_000) process.kill(victim, 'SIGTERM');
      },
    );
    // The primary reports how its worker ended, and replaces it.
    await until('the primary to report the exit', () =>
      api.proc.output().includes(`API worker ${victim} died`),
    );
    expect(api.proc.output()).toContain(`API worker ${victim} died (code 0, signal null)`);
    console.log(`scenario 12 (cluster): ${JSON.stringify(tally(answers))}`);
    for (const a of answers) {
      if (a.status === 0) expect(NETWORK_ERRORS).toContain(a.error);
      else expect([202, 503]).toContain(a.status);
    }

    const accepted = answers.filter((a) => a.status === 202).map((a) => a.orderId ?? '');
    const unanswered = answers.filter((a) => a.status !== 202);
    const retried: BuyAnswer[] = [];
    for (const a of unanswered) {
      const buyer = list.find((b) => b.user === a.user);
      if (buyer === undefined) throw new Error(`no buyer ${a.user}`);
      retried.push(await buyOnce(api.url, 'cluster', buyer));
    }
    expect(retried.every((r) => r.status === 202)).toBe(true);
    const known = new Set([...accepted, ...retried.map((r) => r.orderId ?? '')]);
    await waitDrained(s, 'cluster');
    const stream = await streamState(s, 'cluster');
    expect(new Set(stream.orderIds)).toEqual(known);
    expect(stream.orderIds).toHaveLength(4_000);
    const pg = await pgOrders(s, 'cluster');
    expect(pg).toMatchObject({ rows: 4_000, distinctIds: 4_000, duplicateKeys: 0 });
    expectAuditOk(await audit(s));

    expect(await stopProcess(api.proc)).toEqual({ code: 0, signal: null });
    expect(await stopProcess(orders.proc)).toEqual({ code: 0, signal: null });
  });
});
