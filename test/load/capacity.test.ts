import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  planCapacity,
  type MeasuredCosts,
  type SaleScenario,
  type CapacityPlan,
} from '../../src/load/capacity.js';

// Round figures, so every expectation below can be worked out by hand in its comment.
const costs: MeasuredCosts = {
  apiCpuUsPerBuy: 50,
  apiCpuUsPerSoldOut: 20,
  redisCpuUsPerBuy: 20,
  redisCpuUsPerShardedBuy: 25,
  redisCpuUsPerSoldOut: 0,
  orderRowsPerSecondPerConnection: 10_000,
  orderWorkerCpuUsPerRow: 40,
  pgCpuUsPerRow: 30,
  paymentChargesPerSecond: 1_000,
  paymentWorkerCpuUsPerCharge: 500,
  pgCpuUsPerCharge: 200,
  sseCpuUsPerEvent: 2,
  sseMemoryKiBPerClient: 20,
};

const sale: SaleScenario = {
  buyers: 1_000_000,
  saleSeconds: 60,
  units: 100_000,
  peak: { share: 0.5, seconds: 5 },
  utilisation: 0.5,
  persistWithinSeconds: 60,
  chargeWithinSeconds: 300,
  gatewayLatencyMs: 800,
  paymentConcurrency: 64,
  watchers: 1_000_000,
  sseIntervalMs: 100,
  maxStockStreamsPerProcess: 20_000,
};

describe('the capacity model', () => {
  it('sizes a million buyers in 60 s for 100,000 units, half of them in the first 5 s', () => {
    const plan = planCapacity(costs, sale);
    expect(plan.arrivals).toEqual({
      averagePerSecond: 16_667, // 1e6 / 60
      peakPerSecond: 100_000, // 500,000 in 5 s
      sellOutSeconds: 1, // 100,000 units at 100,000/s
      peakBuysPerSecond: 100_000,
      peakSoldOutPerSecond: 100_000, // the rest of the crowd after the first second
    });
    // 100,000 buys/s x 50 µs = 5 cores, at 50 % busy: 10 processes.
    expect(plan.api).toEqual({ coresAtPeak: 5, processes: 10 });
    // 100,000 buys/s x 20 µs = 2 cores on one Redis: more than one core at 50 %, so the
    // product is sharded, and a sharded buy costs 25 µs: 2.5 cores, 5 shards, a master each.
    expect(plan.redis).toEqual({
      hotProductCores: 2.5,
      sharded: true,
      cpuUsPerBuy: 25,
      stockShards: 5,
      masters: 5,
    });
    // 100,000 orders in 60 s = 1,667 rows/s, a sixth of one connection; keeping up with the
    // peak would take 100,000 / 10,000 / 0.5 = 20.
    expect(plan.orders).toEqual({
      rowsPerSecond: 1_667,
      pgConnections: 1,
      workers: 1,
      pgConnectionsToKeepUp: 20,
    });
    // 64 in flight / 0.8 s = 80 charges/s per worker, below its own 1,000/s;
    // 333 charges/s / 80 / 0.5 = 8.3, so 9.
    expect(plan.payments).toEqual({
      chargesPerSecond: 333,
      perWorkerPerSecond: 80,
      boundBy: 'gateway latency',
      workers: 9,
    });
    // 1e6 watchers x 10 events/s x 2 µs = 20 cores (40 processes at 50 %), but 20,000 streams
    // a process make it 50; 1e6 x 20 KiB = 19.1 GiB.
    expect(plan.sse).toEqual({
      eventsPerSecond: 10_000_000,
      cores: 20,
      processes: 50,
      boundBy: 'streams',
      memoryGiB: 19.1,
    });
    // 1,667 rows/s x 30 µs + 333 charges/s x 200 µs = 0.12 cores: one; 1 x 2 + 9 x 10 connections.
    expect(plan.pg).toEqual({
      coresForOrders: 0.05,
      coresForPayments: 0.07,
      cores: 1,
      connections: 92,
    });
    // 10 API + 5 masters + 50 SSE + 1 for both workers + 1 PG.
    expect(plan.totalCores).toBe(67);
  });

  it('a sale with more units than the crowd sells out after the peak, at the rest of the sale’s rate', () => {
    const plan = planCapacity(costs, { ...sale, units: 600_000 });
    // 500,000 in the first 5 s, then 500,000 over 55 s (9,091/s): the last 100,000 take 11 s.
    expect(plan.arrivals.sellOutSeconds).toBe(16);
    expect(plan.arrivals.peakSoldOutPerSecond).toBe(9_091);
    expect(plan.arrivals.peakBuysPerSecond).toBe(100_000);
  });

  it('a sale with a unit for every buyer never sells out and answers no sold-out', () => {
    const plan = planCapacity(costs, { ...sale, units: 1_000_000 });
    expect(plan.arrivals.sellOutSeconds).toBeNull();
    expect(plan.arrivals.peakSoldOutPerSecond).toBe(0);
  });

  it('the hot product needs shards in proportion to its Redis CPU per sharded buy', () => {
    const redis = (redisCpuUsPerBuy: number, redisCpuUsPerShardedBuy: number) =>
      planCapacity({ ...costs, redisCpuUsPerBuy, redisCpuUsPerShardedBuy }, sale).redis;
    // 0.5 cores at 50 %: one slot on one Redis is enough, whatever a sharded buy would cost.
    expect(redis(5, 100)).toMatchObject({
      stockShards: 1,
      sharded: false,
      cpuUsPerBuy: 5,
      hotProductCores: 0.5,
    });
    // Past one core the cluster's cost per buy sizes the shards: 2 or 4 cores at 50 %.
    expect(redis(20, 20).stockShards).toBe(4);
    expect(redis(20, 40)).toMatchObject({ stockShards: 8, cpuUsPerBuy: 40 });
  });

  it('a gateway that answers at once leaves the payment worker bound by its own rate', () => {
    const plan = planCapacity(costs, { ...sale, gatewayLatencyMs: 0 });
    expect(plan.payments.perWorkerPerSecond).toBe(1_000);
    expect(plan.payments.boundBy).toBe('worker');
    expect(plan.payments.workers).toBe(1); // 333 / 1,000 / 0.5
  });

  it('more charges in flight per worker need fewer payment workers until the worker is the limit', () => {
    const workers = (paymentConcurrency: number) =>
      planCapacity(costs, { ...sale, paymentConcurrency }).payments;
    expect(workers(64).workers).toBe(9);
    expect(workers(256).workers).toBe(3); // 320/s per worker: 333 / 320 / 0.5 = 2.1
    expect(workers(10_000)).toMatchObject({ perWorkerPerSecond: 1_000, boundBy: 'worker' });
  });

  it('SSE processes follow CPU once events cost more than the stream budget allows for', () => {
    const plan = planCapacity({ ...costs, sseCpuUsPerEvent: 5 }, sale);
    // 10,000,000 events/s x 5 µs = 50 cores, 100 processes at 50 %.
    expect(plan.sse).toMatchObject({ cores: 50, processes: 100, boundBy: 'cpu' });
  });

  it('never sizes anything smaller when the target utilisation is lower', () => {
    const counts = (p: CapacityPlan) => [
      p.api.processes,
      p.redis.stockShards,
      p.orders.pgConnections,
      p.orders.workers,
      p.payments.workers,
      p.sse.processes,
      p.pg.cores,
      p.totalCores,
    ];
    fc.assert(
      fc.property(
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        (a, b) => {
          const [low, high] = a < b ? [a, b] : [b, a];
          const busy = counts(planCapacity(costs, { ...sale, utilisation: high }));
          const spare = counts(planCapacity(costs, { ...sale, utilisation: low }));
          spare.forEach((n, i) => expect(n).toBeGreaterThanOrEqual(busy[i] ?? Infinity));
        },
      ),
    );
  });

  it('refuses a scenario or costs it cannot size', () => {
    expect(() => planCapacity(costs, { ...sale, utilisation: 0 })).toThrow(RangeError);
    expect(() => planCapacity(costs, { ...sale, utilisation: 1.5 })).toThrow(RangeError);
    expect(() => planCapacity(costs, { ...sale, peak: { share: 0, seconds: 5 } })).toThrow(
      /peak.share/,
    );
    expect(() => planCapacity(costs, { ...sale, peak: { share: 0.5, seconds: 61 } })).toThrow(
      /peak.seconds/,
    );
    expect(() => planCapacity({ ...costs, apiCpuUsPerBuy: -1 }, sale)).toThrow(/apiCpuUsPerBuy/);
    expect(() => planCapacity({ ...costs, orderRowsPerSecondPerConnection: 0 }, sale)).toThrow(
      /orderRowsPerSecondPerConnection/,
    );
    expect(() => planCapacity(costs, { ...sale, buyers: Number.NaN })).toThrow(/buyers/);
  });
});
