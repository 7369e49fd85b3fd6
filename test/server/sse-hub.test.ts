import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiMetrics } from '../../src/server/metrics.js';
import { SseHub, type SseHubOptions } from '../../src/server/sse-hub.js';

/** A response whose consumer we control: `stall()` stops it from draining, `release()` resumes. */
class FakeResponse extends Writable {
  received = '';
  private stalled = false;
  private held: (() => void)[] = [];
  constructor() {
    super({ highWaterMark: 16, decodeStrings: false });
  }
  writeHead(): this {
    return this;
  }
  stall(): void {
    this.stalled = true;
  }
  release(): void {
    this.stalled = false;
    for (const done of this.held.splice(0)) done();
  }
  override _write(chunk: string, _encoding: string, done: () => void): void {
    this.received += chunk;
    if (this.stalled) this.held.push(done);
    else done();
  }
}

const fakeRequest = {
  socket: { setTimeout: () => undefined, setNoDelay: () => undefined },
} as unknown as IncomingMessage;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hub with room for 10 streams of each kind, no heartbeat within a test, and `options`. */
const hubWith = (
  options: Pick<SseHubOptions, 'intervalMs' | 'dropAfterMs'> & Partial<SseHubOptions>,
) =>
  new SseHub({
    heartbeatMs: 60_000,
    budgets: { stock: { total: 10, perOwner: 10 }, order: { total: 10, perOwner: 10 } },
    retryMs: 1000,
    maxAgeMs: 60_000,
    ...options,
  });

describe('SseHub', () => {
  let hub: SseHub;
  afterEach(() => hub.close());

  it('coalesces a burst into the latest event per interval', async () => {
    hub = hubWith({ intervalMs: 20, dropAfterMs: 1000 });
    const res = new FakeResponse();
    hub.open(fakeRequest, res as unknown as ServerResponse, 't', 'data: first\n\n', {
      kind: 'stock',
      owner: 'a',
    });
    for (let i = 0; i < 100; i++) hub.publish('t', () => `data: ${i}\n\n`);
    await tick(60);
    expect(res.received).toBe('retry: 1000\n\ndata: first\n\ndata: 99\n\n');
  });

  it('skips a client that is not draining, gives it the latest event when it drains, and keeps serving others', async () => {
    hub = hubWith({ intervalMs: 10, dropAfterMs: 10_000 });
    const slow = new FakeResponse();
    const fast = new FakeResponse();
    hub.open(fakeRequest, slow as unknown as ServerResponse, 't', undefined, {
      kind: 'stock',
      owner: 'a',
    });
    hub.open(fakeRequest, fast as unknown as ServerResponse, 't', undefined, {
      kind: 'stock',
      owner: 'a',
    });
    slow.stall();
    for (let i = 0; i < 5; i++) {
      hub.publish('t', () => `data: ${'x'.repeat(20)}${i}\n\n`);
      await tick(25);
    }
    expect(fast.received).toContain(`x4`);
    expect(slow.received).not.toContain('x4');
    expect(hub.stats.skipped).toBeGreaterThan(0);
    slow.release();
    await tick(20);
    expect(slow.received.endsWith(`data: ${'x'.repeat(20)}4\n\n`)).toBe(true);
    expect(slow.received).not.toContain('x2\n'); // the events it missed were not queued up
  });

  it('drops a client that stays stalled past the bound', async () => {
    hub = hubWith({ intervalMs: 10, dropAfterMs: 50 });
    const stuck = new FakeResponse();
    hub.open(fakeRequest, stuck as unknown as ServerResponse, 't', undefined, {
      kind: 'stock',
      owner: 'a',
    });
    stuck.stall();
    hub.publish('t', () => `data: ${'y'.repeat(40)}\n\n`);
    await tick(20);
    hub.publish('t', () => `data: ${'z'.repeat(40)}\n\n`);
    await tick(120);
    expect(stuck.destroyed).toBe(true);
    expect(hub.stats.dropped).toBe(1);
    expect(hub.size).toBe(0);
    // What /metrics says of it.
    const metrics = await new ApiMetrics({ sse: hub }).registry.metrics();
    expect(metrics).toMatch(/^fsale_sse_streams_ended_total\{reason="dropped"\} 1$/m);
    expect(metrics).toMatch(/^fsale_sse_streams_ended_total\{reason="expired"\} 0$/m);
    expect(metrics).toMatch(/^fsale_sse_events_total\{result="skipped"\} [1-9]/m);
  });

  it('delivers an event published while the snapshot was being read (watch, then open)', async () => {
    hub = hubWith({ intervalMs: 10, dropAfterMs: 1000 });
    const release = hub.watch('order:1');
    hub.publish('order:1', () => 'data: paid\n\n'); // between the read and the open
    const res = new FakeResponse();
    hub.open(fakeRequest, res as unknown as ServerResponse, 'order:1', 'data: queued\n\n', {
      kind: 'order',
      owner: 'a',
    });
    release();
    await tick(40);
    expect(res.received).toBe('retry: 1000\n\ndata: queued\n\ndata: paid\n\n');
    // Without a watcher or a client, events for a topic are not kept.
    hub.publish('order:2', () => 'data: paid\n\n');
    const late = new FakeResponse();
    hub.open(fakeRequest, late as unknown as ServerResponse, 'order:2', undefined, {
      kind: 'order',
      owner: 'a',
    });
    await tick(40);
    expect(late.received).toBe('retry: 1000\n\n');
  });

  it('ends a stream at its max age: a reading client cleanly with a retry: 0 hint, a stalled one by dropping it', async () => {
    hub = hubWith({ intervalMs: 10, dropAfterMs: 60_000, maxAgeMs: 80 });
    const reading = new FakeResponse();
    const stalled = new FakeResponse();
    hub.open(fakeRequest, reading as unknown as ServerResponse, 't', 'data: first\n\n', {
      kind: 'stock',
      owner: 'a',
    });
    hub.open(fakeRequest, stalled as unknown as ServerResponse, 't', undefined, {
      kind: 'stock',
      owner: 'a',
    });
    stalled.stall();
    hub.publish('t', () => `data: ${'s'.repeat(40)}\n\n`); // more than its buffer holds
    await tick(40);
    expect(hub.size).toBe(2); // not before a quarter less than the max age
    await tick(100);
    expect(reading.writableFinished).toBe(true); // ended, not destroyed

    expect(reading.received.endsWith('retry: 0\n\n')).toBe(true);
    expect(stalled.destroyed).toBe(true);
    expect(stalled.writableFinished).toBe(false);
    expect(hub.stats).toMatchObject({ expired: 1, dropped: 1 });
    expect(await new ApiMetrics({ sse: hub }).registry.metrics()).toMatch(
      /^fsale_sse_streams_ended_total\{reason="expired"\} 1$/m,
    );
    expect(hub.size).toBe(0);
  });
});
