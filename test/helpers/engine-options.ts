// Engine options for flood tests that drive runFlood directly (no CLI, no audit).
import type { FloodOptions, LoadModel } from '../../src/load/flood.js';
import { WHOLE } from '../../src/load/slices.js';
import { TEST_JWT_SECRET } from './services.js';

export function engineOptions(url: string, model: LoadModel): FloodOptions {
  return {
    url: new URL(url),
    productId: 'p1',
    qty: 1,
    model,
    users: 100_000,
    userPrefix: 'co-',
    keyPrefix: 'co-key-',
    jwtSecret: TEST_JWT_SECRET,
    retryRatio: 0,
    doubleClick: false,
    seed: 1,
    timeoutMs: 10_000,
    maxInFlight: 1000,
    pipelining: 1,
    slice: WHOLE,
    maxSendLagMs: 50,
    follow: undefined,
    thresholds: [],
    audit: undefined,
    auditAttempts: 1,
    auditRetryDelayMs: 0,
    preflight: true,
  };
}
