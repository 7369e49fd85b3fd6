// `fsale flood`'s flags (the command, src/commands/flood.ts, turns them into engine options
// with src/cli/flood-options.ts).
import { Flags, type Interfaces } from '@oclif/core';
import { jwtSecretFlag, serviceFlags } from './base.js';
import { durationFlag } from './duration-flag.js';
import { defaultThreads } from '../load/flood-thread.js';

const MAX_QTY = 1000;

export const floodFlags = {
  ...serviceFlags,
  ...jwtSecretFlag,
  'gateway-url': Flags.string({
    description:
      'payment gateway, for the audit [env: FSALE_GATEWAY_URL, default: http://127.0.0.1:3100]',
    helpGroup: 'SERVICES',
  }),
  url: Flags.string({ description: 'API base URL [default: http://127.0.0.1:$PORT]' }),
  product: Flags.string({ description: 'product id to buy', required: true }),
  qty: Flags.integer({ description: 'units per buy', default: 1, min: 1, max: MAX_QTY }),
  rate: Flags.integer({
    description: 'open model: arrivals per second (at full rate)',
    min: 1,
    exclusive: ['connections', 'stages'],
    helpGroup: 'SHAPE',
  }),
  stages: Flags.string({
    description:
      'open model: linear ramps between targets, DURATION:RATE,... from 0 (as k6 ramping-arrival-rate), e.g. 10s:1000,30s:5000,10s:0; the run lasts as long as the stages unless --duration/--requests stop it sooner',
    exclusive: ['connections', 'rate', 'ramp'],
    helpGroup: 'SHAPE',
  }),
  connections: Flags.integer({
    description: 'closed model: connections, each with one buy in flight (autocannon)',
    min: 1,
    exclusive: ['rate', 'stages'],
    helpGroup: 'SHAPE',
  }),
  ramp: durationFlag({
    description: 'open model: ramp linearly from 0 to --rate over this long',
    dependsOn: ['rate'],
    helpGroup: 'SHAPE',
  }),
  spike: Flags.string({
    description:
      'open model: multiply the rate by FACTOR from START for LENGTH (default 1s): FACTORx@START[:LENGTH], e.g. 5x@10s:2s; repeatable',
    multiple: true,
    helpGroup: 'SHAPE',
  }),
  arrivals: Flags.string({
    description: 'open model: evenly spaced arrivals, or a Poisson process (random gaps)',
    options: ['uniform', 'poisson'],
    default: 'uniform',
    helpGroup: 'SHAPE',
  }),
  duration: durationFlag({
    description: 'how long to send [default: 10s unless --requests]',
    min: 1,
    exclusive: ['requests'],
    helpGroup: 'SHAPE',
  }),
  requests: Flags.integer({
    description: 'how many arrivals (open) or requests (closed) to send',
    min: 1,
    exclusive: ['duration'],
    helpGroup: 'SHAPE',
  }),
  users: Flags.integer({
    description: 'distinct buyers; purchase i is made by user i mod users',
    default: 10_000,
    min: 1,
    helpGroup: 'BUYERS',
  }),
  'user-prefix': Flags.string({
    description: 'user ids are <prefix><n> [default: flood-<run id>-, fresh users every run]',
    helpGroup: 'BUYERS',
  }),
  'retry-ratio': Flags.string({
    description: 'fraction (0-1) of sends that re-send a recent purchase with the same key',
    default: '0',
    helpGroup: 'BUYERS',
  }),
  'double-click': Flags.boolean({
    description: 'open model: every purchase is two simultaneous requests with one key',
    default: false,
    helpGroup: 'BUYERS',
  }),
  seed: Flags.integer({
    description: 'seed for retries and Poisson arrivals [default: random]',
    helpGroup: 'BUYERS',
  }),
  timeout: durationFlag({
    description: 'a buy with no answer after this long is a network error',
    default: 10_000,
    min: 1,
  }),
  'max-in-flight': Flags.integer({
    description: 'open model: requests out at once (beyond it the run is flagged)',
    default: 1000,
    min: 1,
  }),
  pipelining: Flags.integer({
    description:
      'open model: requests written on one connection before its answer (1: none; a crowd does not pipeline)',
    default: 1,
    min: 1,
    max: 64,
  }),
  'max-send-lag': durationFlag({
    description: "flag the run when the generator's send lag or event-loop delay p99 exceeds this",
    default: 50,
    min: 1,
  }),
  threads: Flags.integer({
    description: `open model: worker threads sending the schedule, each a slice of the users [default: one per core but one, at most 4, at least 1: ${defaultThreads()} here]`,
    min: 1,
    max: 64,
    helpGroup: 'SCALE',
  }),
  part: Flags.string({
    description:
      'open model: run part K of N of the sale (1-based, e.g. 2/3): the users u with u mod N = K-1, none shared with another part; merge the parts with fsale report merge',
    helpGroup: 'SCALE',
  }),
  'start-at': Flags.string({
    description:
      'start the schedule at this wall-clock time (ISO with zone, e.g. 2026-12-01T12:00:00Z; at most 24 h ahead), every part of a sale at the same one; also seeds --seed when not given',
    helpGroup: 'SCALE',
  }),
  follow: Flags.boolean({
    description: 'track every accepted order to paid / payment_failed',
    default: false,
    helpGroup: 'FOLLOW',
  }),
  'follow-streams': Flags.integer({
    description: 'orders followed over SSE at once; the rest are polled',
    default: 200,
    min: 0,
    helpGroup: 'FOLLOW',
  }),
  'poll-interval': durationFlag({
    description: 'time between two polls of one order',
    default: 1000,
    min: 50,
    helpGroup: 'FOLLOW',
  }),
  'follow-timeout': durationFlag({
    description: 'after the load, wait at most this long for orders to settle',
    default: 60_000,
    min: 1,
    helpGroup: 'FOLLOW',
  }),
  audit: Flags.boolean({
    description: 'run the invariant audit at the end (--no-audit skips it)',
    default: true,
    allowNo: true,
    helpGroup: 'CHECKS',
  }),
  gateway: Flags.boolean({
    description: "include the gateway's ledger in the audit (--no-gateway skips it)",
    default: true,
    allowNo: true,
    helpGroup: 'CHECKS',
  }),
  threshold: Flags.string({
    description:
      "gate, e.g. 'p99<50ms', 'errors=0', 'error_rate<1%' (repeatable; exit 3 if missed)",
    multiple: true,
    helpGroup: 'CHECKS',
  }),
  html: Flags.string({ description: 'write a self-contained HTML report to this file' }),
  quiet: Flags.boolean({ description: 'no progress lines on stderr', default: false }),
};

export type FloodFlags = Interfaces.InferredFlags<typeof floodFlags>;
