// The capacity model of docs/capacity.md: from per-component costs measured by
// bench/capacity.ts to how many of each component a sale needs. Pure: the inputs are figures,
// the answer is counts, so the same costs always size the same sale.

/** What each component costs, as bench/capacity.ts measures it on one machine. */
export interface MeasuredCosts {
  /** CPU µs of the API process per accepted buy (202). */
  apiCpuUsPerBuy: number;
  /** CPU µs of the API process per sold-out answer (409, the in-process fast path). */
  apiCpuUsPerSoldOut: number;
  /** CPU µs of the Redis server per accepted buy: the product's one shard does all of it. */
  redisCpuUsPerBuy: number;
  /**
   * CPU µs per accepted buy of a product split one stock shard per master on a Redis Cluster,
   * summed over the masters: what a buy costs once the product outgrows one Redis core.
   */
  redisCpuUsPerShardedBuy: number;
  /** CPU µs of the Redis server per sold-out answer. */
  redisCpuUsPerSoldOut: number;
  /** Orders one order worker persists per second over one PostgreSQL connection. */
  orderRowsPerSecondPerConnection: number;
  /** CPU µs of the order worker process per order persisted. */
  orderWorkerCpuUsPerRow: number;
  /** CPU µs of the PostgreSQL backend per order persisted. */
  pgCpuUsPerRow: number;
  /**
   * Charges one payment worker settles per second against a gateway that answers at once:
   * the worker's own ceiling (its CPU and PostgreSQL), whatever its concurrency.
   */
  paymentChargesPerSecond: number;
  /** CPU µs of the payment worker process per charge. */
  paymentWorkerCpuUsPerCharge: number;
  /** CPU µs of the PostgreSQL backends per charge (lease, attempt, settle). */
  pgCpuUsPerCharge: number;
  /** CPU µs of the API process per SSE stock event delivered to one client. */
  sseCpuUsPerEvent: number;
  /** Resident memory of the API process per open SSE stream, KiB. */
  sseMemoryKiBPerClient: number;
}

/** The sale to size, and the targets it must meet. */
export interface SaleScenario {
  buyers: number;
  /** Every buyer arrives once within this many seconds. */
  saleSeconds: number;
  /** Units for sale (one per buyer). */
  units: number;
  /**
   * The flash crowd: `share` of the buyers arrive, evenly, in the first `seconds`; the rest
   * arrive evenly over the remaining sale.
   */
  peak: { share: number; seconds: number };
  /** Every core is sized to run at most this busy (0-1]. */
  utilisation: number;
  /** Every order in PostgreSQL at most this long after the sale sold out. */
  persistWithinSeconds: number;
  /** Every order charged at most this long after the sale sold out. */
  chargeWithinSeconds: number;
  /** Mean answer time of the real payment gateway (the mock's at speed 1 is ~870 ms). */
  gatewayLatencyMs: number;
  /** Charges in flight per payment worker (`fsale work payments --concurrency`). */
  paymentConcurrency: number;
  /** Open SSE stock streams while the sale sells. */
  watchers: number;
  /** The SSE hub sends one client at most one event per this interval (coalescing). */
  sseIntervalMs: number;
  /** Stock streams one API process accepts (its descriptor budget). */
  maxStockStreamsPerProcess: number;
}

export interface CapacityPlan {
  arrivals: {
    averagePerSecond: number;
    peakPerSecond: number;
    /** When the last unit is taken, arrivals served as they come; null if it never sells out. */
    sellOutSeconds: number | null;
    /** Most accepted buys, and most sold-out answers, in one second. */
    peakBuysPerSecond: number;
    peakSoldOutPerSecond: number;
  };
  api: { coresAtPeak: number; processes: number };
  redis: {
    /** Cores the hot product's buy scripts keep busy at the peak. */
    hotProductCores: number;
    /** Whether one Redis core cannot carry the product, so its stock is split over a cluster. */
    sharded: boolean;
    /** The Redis CPU per buy those cores are sized from: one node's, or a sharded buy's. */
    cpuUsPerBuy: number;
    /** Stock shards, one per master, so that no master runs above the utilisation. */
    stockShards: number;
    masters: number;
  };
  orders: {
    rowsPerSecond: number;
    pgConnections: number;
    workers: number;
    /** Connections that would persist orders as fast as the peak accepts them. */
    pgConnectionsToKeepUp: number;
  };
  payments: {
    chargesPerSecond: number;
    /** What one worker settles: its measured rate, or concurrency / gateway latency if lower. */
    perWorkerPerSecond: number;
    /** Which of the two sets the worker's rate. */
    boundBy: 'gateway latency' | 'worker';
    workers: number;
  };
  sse: {
    eventsPerSecond: number;
    cores: number;
    processes: number;
    /** Which of CPU or the stream budget sets the process count. */
    boundBy: 'cpu' | 'streams';
    memoryGiB: number;
  };
  pg: { coresForOrders: number; coresForPayments: number; cores: number; connections: number };
  /** Cores of every component above, each sized for its own peak. */
  totalCores: number;
}

/** `fsale work orders --concurrency 1` opens concurrency + 1 connections (one for its reads). */
export const ORDER_WORKER_PG_CONNECTIONS = 2;
/** `fsale work payments` opens a pool of 10 (src/commands/work/payments.ts). */
export const PAYMENT_WORKER_PG_CONNECTIONS = 10;

function positive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`${name} must be a positive number, got ${value}`);
}

function nonNegative(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`${name} must be zero or more, got ${value}`);
}

function validate(costs: MeasuredCosts, sale: SaleScenario): void {
  for (const name of Object.keys(costs) as (keyof MeasuredCosts)[]) nonNegative(name, costs[name]);
  positive('orderRowsPerSecondPerConnection', costs.orderRowsPerSecondPerConnection);
  positive('paymentChargesPerSecond', costs.paymentChargesPerSecond);
  for (const name of [
    'buyers',
    'saleSeconds',
    'persistWithinSeconds',
    'chargeWithinSeconds',
    'paymentConcurrency',
    'sseIntervalMs',
    'maxStockStreamsPerProcess',
  ] as const)
    positive(name, sale[name]);
  for (const name of ['units', 'gatewayLatencyMs', 'watchers'] as const)
    nonNegative(name, sale[name]);
  positive('peak.seconds', sale.peak.seconds);
  if (!(sale.peak.share > 0 && sale.peak.share <= 1))
    throw new RangeError(`peak.share must be in (0, 1], got ${sale.peak.share}`);
  if (!(sale.peak.seconds <= sale.saleSeconds))
    throw new RangeError('peak.seconds must not exceed saleSeconds');
  if (sale.peak.share < 1 && sale.peak.seconds === sale.saleSeconds)
    throw new RangeError('a peak shorter than the whole sale is needed for the rest of the buyers');
  if (!(sale.utilisation > 0 && sale.utilisation <= 1))
    throw new RangeError(`utilisation must be in (0, 1], got ${sale.utilisation}`);
}

/** Whole units of something sized to `demand` at `utilisation`, at least one. */
function count(demand: number, utilisation: number): number {
  // The rounding guards against 2.0000000001 becoming 3 from floating point alone.
  return Math.max(1, Math.ceil(+(demand / utilisation).toFixed(9)));
}

const round = (value: number, digits = 2) => +value.toFixed(digits);

/**
 * Sizes every component for `sale` from `costs`, each for its own busiest second, assuming
 * arrivals are served as they come (the sizing makes that true) and every buyer asks once for
 * one unit. Not modelled: the network, PostgreSQL's disk, retries, the tail's borrowing
 * between stock shards, connection set-up of the SSE clients (docs/capacity.md).
 */
export function planCapacity(costs: MeasuredCosts, sale: SaleScenario): CapacityPlan {
  validate(costs, sale);
  const u = sale.utilisation;
  const peakBuyers = sale.buyers * sale.peak.share;
  const peakPerSecond = peakBuyers / sale.peak.seconds;
  const restSeconds = sale.saleSeconds - sale.peak.seconds;
  const restPerSecond = restSeconds > 0 ? (sale.buyers - peakBuyers) / restSeconds : 0;

  // The crowd comes first and fastest, so the first units go at the peak rate; the product
  // sells out within the peak, or later at the rest's rate, or never (more units than buyers).
  let sellOutSeconds: number | null;
  let peakSoldOutPerSecond: number;
  if (sale.units >= sale.buyers) {
    sellOutSeconds = null;
    peakSoldOutPerSecond = 0;
  } else if (sale.units <= peakBuyers) {
    sellOutSeconds = sale.units / peakPerSecond;
    peakSoldOutPerSecond = peakPerSecond;
  } else {
    sellOutSeconds = sale.peak.seconds + (sale.units - peakBuyers) / restPerSecond;
    peakSoldOutPerSecond = restPerSecond;
  }
  const peakBuysPerSecond = sale.units > 0 ? peakPerSecond : 0;

  // A second that mixes buys and sold-out answers costs between the two pure seconds.
  const cores = (perBuyUs: number, perSoldOutUs: number) =>
    Math.max(peakBuysPerSecond * perBuyUs, peakSoldOutPerSecond * perSoldOutUs) / 1e6;
  const apiCores = cores(costs.apiCpuUsPerBuy, costs.apiCpuUsPerSoldOut);
  // One product's buys all run on its shards' masters (docs/ARCHITECTURE.md section 10); a
  // buyer's home shard is a hash of the user id, so each of K shards takes 1/K of them. A
  // product one Redis core can carry keeps one shard; one that needs more is split over a
  // cluster, where a buy costs what was measured there (slot routing, and each master getting
  // a share of every batch of buys, so fewer buys per system call).
  const oneNodeCores = cores(costs.redisCpuUsPerBuy, costs.redisCpuUsPerSoldOut);
  const sharded = count(oneNodeCores, u) > 1;
  const redisCpuUsPerBuy = sharded ? costs.redisCpuUsPerShardedBuy : costs.redisCpuUsPerBuy;
  const hotProductCores = sharded
    ? cores(redisCpuUsPerBuy, costs.redisCpuUsPerSoldOut)
    : oneNodeCores;
  const stockShards = count(hotProductCores, u);

  const rowsPerSecond = sale.units / sale.persistWithinSeconds;
  const orderConnections = count(rowsPerSecond / costs.orderRowsPerSecondPerConnection, u);
  // One worker per connection (concurrency 1, as measured) unless CPU asks for more.
  const orderWorkers = Math.max(
    orderConnections,
    count((rowsPerSecond * costs.orderWorkerCpuUsPerRow) / 1e6, u),
  );

  // Little's law: a worker with C charges in flight against a gateway answering in L seconds
  // settles at most C / L per second, however fast the worker itself is.
  const chargesPerSecond = sale.units / sale.chargeWithinSeconds;
  const latencyBound =
    sale.gatewayLatencyMs > 0
      ? sale.paymentConcurrency / (sale.gatewayLatencyMs / 1000)
      : Number.POSITIVE_INFINITY;
  const workerBound = costs.paymentChargesPerSecond;
  const perWorkerPerSecond = Math.min(workerBound, latencyBound);
  const paymentWorkers = count(chargesPerSecond / perWorkerPerSecond, u);

  // While the stock changes (faster than the coalescing interval during a flash sale) every
  // watcher gets one event per interval.
  const eventsPerSecond = sale.watchers * (1000 / sale.sseIntervalMs);
  const sseCores = (eventsPerSecond * costs.sseCpuUsPerEvent) / 1e6;
  const byCpu = sale.watchers > 0 ? count(sseCores, u) : 0;
  const byStreams = Math.ceil(sale.watchers / sale.maxStockStreamsPerProcess);

  const pgForOrders = (rowsPerSecond * costs.pgCpuUsPerRow) / 1e6;
  const pgForPayments = (chargesPerSecond * costs.pgCpuUsPerCharge) / 1e6;
  const pgCores = count(pgForOrders + pgForPayments, u);
  const pgConnections =
    orderWorkers * ORDER_WORKER_PG_CONNECTIONS + paymentWorkers * PAYMENT_WORKER_PG_CONNECTIONS;

  const apiProcesses = count(apiCores, u);
  const sseProcesses = Math.max(byCpu, byStreams);
  const workerCores = count(
    (rowsPerSecond * costs.orderWorkerCpuUsPerRow +
      chargesPerSecond * costs.paymentWorkerCpuUsPerCharge) /
      1e6,
    u,
  );
  return {
    arrivals: {
      averagePerSecond: round(sale.buyers / sale.saleSeconds, 0),
      peakPerSecond: round(peakPerSecond, 0),
      sellOutSeconds: sellOutSeconds === null ? null : round(sellOutSeconds, 3),
      peakBuysPerSecond: round(peakBuysPerSecond, 0),
      peakSoldOutPerSecond: round(peakSoldOutPerSecond, 0),
    },
    api: { coresAtPeak: round(apiCores), processes: apiProcesses },
    redis: {
      hotProductCores: round(hotProductCores),
      sharded,
      cpuUsPerBuy: redisCpuUsPerBuy,
      stockShards,
      masters: stockShards,
    },
    orders: {
      rowsPerSecond: round(rowsPerSecond, 0),
      pgConnections: orderConnections,
      workers: orderWorkers,
      pgConnectionsToKeepUp: count(peakBuysPerSecond / costs.orderRowsPerSecondPerConnection, u),
    },
    payments: {
      chargesPerSecond: round(chargesPerSecond, 0),
      perWorkerPerSecond: round(perWorkerPerSecond, 1),
      boundBy: latencyBound < workerBound ? 'gateway latency' : 'worker',
      workers: paymentWorkers,
    },
    sse: {
      eventsPerSecond: round(eventsPerSecond, 0),
      cores: round(sseCores),
      processes: sseProcesses,
      boundBy: byCpu >= byStreams ? 'cpu' : 'streams',
      memoryGiB: round((sale.watchers * costs.sseMemoryKiBPerClient) / 2 ** 20, 1),
    },
    pg: {
      coresForOrders: round(pgForOrders),
      coresForPayments: round(pgForPayments),
      cores: pgCores,
      connections: pgConnections,
    },
    totalCores: apiProcesses + stockShards + sseProcesses + workerCores + pgCores,
  };
}
