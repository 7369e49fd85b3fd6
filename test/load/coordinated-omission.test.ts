import { afterEach, describe, expect, it } from 'vitest';
import { runFlood } from '../../src/load/flood.js';
import { engineOptions } from '../helpers/engine-options.js';
import { startStallServer, type StallServer } from '../helpers/stall-server.js';

describe('coordinated omission: a server that stalls for 1 s once', () => {
  let server: StallServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('an open-model flood keeps arriving during the stall, so its p99 shows the stall', async () => {
    server = await startStallServer({ stallAfterMs: 1000, stallMs: 1000 });
    const summary = await runFlood(
      engineOptions(server.url, {
        kind: 'open',
        shape: { rate: 200, rampSeconds: 0, spikes: [] },
        arrivals: 'uniform',
        durationSeconds: 3,
        requests: undefined,
      }),
    );
    expect(server.stalledAt()).toBeDefined();
    expect(summary.requests.sent).toBe(600);
    expect(summary.outcomes.accepted.count).toBe(600);
    // Arrivals did not wait for the stalled answers: about 200 were sent during the stall
    // second, each waiting up to 1 s, measured from when it was meant to be sent.
    const stalled = summary.timeline.find((row) => row.second === 1);
    expect(stalled?.sent).toBeGreaterThan(150);
    expect(summary.latencyOrigin).toBe('intended_send_time');
    expect(summary.outcomes.accepted.latencyMs?.p99).toBeGreaterThanOrEqual(900);
    expect(summary.outcomes.accepted.latencyMs?.p90).toBeGreaterThanOrEqual(300);
    expect(summary.generator.inFlightCapHits).toBe(0);
  });

  it('a closed-model flood against the same stall hides it below p99: only its few connections waited', async () => {
    server = await startStallServer({ stallAfterMs: 1000, stallMs: 1000 });
    const connections = 4;
    const summary = await runFlood(
      engineOptions(server.url, {
        kind: 'closed',
        connections,
        durationSeconds: 3,
        requests: undefined,
      }),
    );
    expect(server.stalledAt()).toBeDefined();
    expect(summary.latencyOrigin).toBe('actual_send_time');
    expect(summary.requests.sent).toBe(summary.requests.answered);
    // The stall is there (max), but each connection sent nothing while it waited, so fewer
    // than 1 % of the samples saw it: the same stall, invisible at p99.
    expect(summary.outcomes.accepted.latencyMs?.max).toBeGreaterThanOrEqual(900);
    expect(summary.requests.answered).toBeGreaterThan(connections * 100);
    expect(summary.outcomes.accepted.latencyMs?.p99).toBeLessThan(900);
  });
});
