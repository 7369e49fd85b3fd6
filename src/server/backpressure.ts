import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Redis } from '../redis/client.js';
import { ORDER_GROUP } from '../redis/keys.js';
import { readLayouts } from '../redis/sale-state.js';

export interface BackpressureOptions {
  /** Refuse buys while the order streams hold more unprocessed entries than this. */
  maxQueue: number;
  /** Refuse buys while the event loop's p99 delay over the last sample exceeds this. */
  maxEventLoopDelayMs: number;
  sampleIntervalMs?: number;
}

export interface BackpressureState {
  /** Unprocessed entries (never delivered + delivered but not acked) per product. */
  queue: Map<string, number>;
  eventLoopDelayMs: number;
  overloaded: boolean;
}

/** Reads `lag` and `pending` of the order group from XINFO GROUPS (Redis 7 reply layout). */
function groupBacklog(reply: unknown, streamLength: number): number {
  if (!Array.isArray(reply)) return streamLength;
  for (const group of reply) {
    if (!Array.isArray(group)) continue;
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < group.length; i += 2) fields.set(String(group[i]), group[i + 1]);
    if (fields.get('name') !== ORDER_GROUP) continue;
    const lag = fields.get('lag');
    const pending = Number(fields.get('pending') ?? 0);
    // lag is nil when Redis cannot compute it (after deletions); fall back to the length.
    return (typeof lag === 'number' ? lag : streamLength) + pending;
  }
  return streamLength;
}

/**
 * Decides, from samples taken off the hot path, whether the API should accept more buys than
 * the workers can persist. Sampling every `sampleIntervalMs` costs one pipeline per interval
 * per process, not one per request.
 */
export class Backpressure {
  readonly state: BackpressureState = { queue: new Map(), eventLoopDelayMs: 0, overloaded: false };
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly options: BackpressureOptions,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
  }

  start(): void {
    this.histogram.reset();
    this.histogram.enable();
    const interval = this.options.sampleIntervalMs ?? 250;
    this.timer = setInterval(() => void this.sample().catch(() => undefined), interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.histogram.disable();
  }

  get overloaded(): boolean {
    return this.state.overloaded;
  }

  async sample(): Promise<BackpressureState> {
    const delayMs = this.histogram.percentile(99) / 1e6;
    this.histogram.reset();
    const layouts = await readLayouts(this.redis, this.prefix);
    const queue = new Map<string, number>();
    // One pipeline per shard: on a Redis Cluster each shard's keys live in its own slot.
    await Promise.all(
      layouts.map(async ({ productId, shards }) => {
        const backlogs = await Promise.all(
          shards.map(async (keys) => {
            const [lengthReply, groups] =
              (await this.redis.pipeline().xlen(keys.orders).xinfo('GROUPS', keys.orders).exec()) ??
              [];
            const length = Number(lengthReply?.[1] ?? 0);
            return groups?.[0] ? length : groupBacklog(groups?.[1], length);
          }),
        );
        queue.set(
          productId,
          backlogs.reduce((a, b) => a + b, 0),
        );
      }),
    );
    const total = [...queue.values()].reduce((a, b) => a + b, 0);
    this.state.queue = queue;
    this.state.eventLoopDelayMs = delayMs;
    this.state.overloaded =
      total > this.options.maxQueue || delayMs > this.options.maxEventLoopDelayMs;
    return this.state;
  }
}
