import { randomBytes, randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Flags } from '@oclif/core';
import { FsaleCommand, jwtSecretFlag, serviceFlags } from '../cli/base.js';
import { runAudit } from '../audit/audit.js';
import { fetchLedger } from '../audit/ledger.js';
import { requireJwtSecret } from '../config.js';
import { connectPostgres, type Pool } from '../db/pool.js';
import { UsageError } from '../domain/errors.js';
import { connectRedis, type Redis } from '../redis/client.js';
import { PRODUCT_ID } from '../redis/keys.js';
import {
  parseSeconds,
  parseSpike,
  parseStages,
  ShapeSyntaxError,
  stagesSeconds,
} from '../load/arrivals.js';
import { runFlood, type FloodOptions, type LoadModel } from '../load/flood.js';
import { OUTCOME_CLASSES } from '../load/outcomes.js';
import { defaultThreads } from '../load/flood-thread.js';
import { parsePart, parseStartAt, SliceSyntaxError, WHOLE } from '../load/slices.js';
import { renderHtmlReport } from '../load/report-html.js';
import { renderProgress, renderSummary } from '../load/report-text.js';
import type { FloodSummary } from '../load/summary.js';
import { parseThreshold, ThresholdSyntaxError } from '../load/thresholds.js';

const MAX_QTY = 1000;

export default class Flood extends FsaleCommand {
  static override summary = 'Flood a sale with buyers and report latency, outcomes and invariants.';
  static override description = `Drives POST /order/buy on a running API with distinct users (tokens signed locally with
FSALE_JWT_SECRET) and a fresh Idempotency-Key per purchase.

Open model (--rate): arrivals at fixed intended times, with --ramp and --spike; latency is
measured from each intended send time, so a stalled server shows up in the percentiles
(no coordinated omission). Closed model (--connections): autocannon's engine, N connections
each sending the next buy when the previous one is answered.

Latency is kept in one HDR histogram per outcome (202, 409 sold_out, 409 other, 429, 503,
other 4xx, 5xx, network error). --retry-ratio and --double-click re-send purchases with the same
key: the report counts replays and any second reservation (must be 0). --follow tracks every
accepted order to paid / payment_failed (SSE, with polling beyond --follow-streams). At the end
the audit runs (--no-audit skips it) and --threshold gates are checked.

All cores: --threads N splits the open model's schedule by user between N worker threads
that start on one instant; their histograms, counts and timelines merge into one summary.
The default is one thread per core but one (left to a server on the same machine), at most
4, at least 1: ${defaultThreads()} on this machine.

Many machines: run \`flood --part K/N --start-at <ISO time> --json > partK.json\` on each of
N machines (same shape flags, same --seed or --start-at): part K sends the arrivals of the
users u with u mod N = K-1, so no two parts share a buyer, from the same instant. Then
\`fsale report merge part*.json\` merges them into one summary and one verdict.

Exit codes: 0 pass, 1 an invariant is violated (audit failed or a key reserved twice),
2 bad input or a service cannot be reached, 3 a threshold was missed, 4 inconclusive: the
generator could not keep to its schedule, so its figures include its own delay (never a pass).

Thresholds: METRIC OP NUMBER[UNIT], e.g. 'p99<50' (ms, every answered request),
'p99:accepted<=20ms', 'errors=0', 'error_rate<1%', 'orders=1000', 'second_reservations=0',
'rate>=900', 'confirm_p99<5s'. See README "fsale flood" for every metric.`;
  static override examples = [
    '<%= config.bin %> flood --product p1 --rate 2000 --duration 30s --users 50000',
    '<%= config.bin %> flood --product p1 --rate 20000 --duration 30s --users 500000 --threads 4',
    '<%= config.bin %> flood --product p1 --rate 60000 --duration 30s --users 1000000 --part 2/3 --start-at 2026-12-01T12:00:00Z --json > part2.json',
    '<%= config.bin %> flood --product p1 --rate 500 --ramp 10s --spike 5x@15s:3s --duration 30s --follow --html report.html',
    "<%= config.bin %> flood --product p1 --connections 64 --requests 20000 --threshold 'p99<50' --threshold 'errors=0'",
    '<%= config.bin %> flood --product p1 --rate 1000 --duration 10s --retry-ratio 0.1 --double-click --json > run.json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
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
    ramp: Flags.string({
      description: 'open model: ramp linearly from 0 to --rate over this long (10s, 1m)',
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
    duration: Flags.string({
      description: 'how long to send (30s, 2m) [default: 10s unless --requests]',
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
    timeout: Flags.string({
      description: 'a buy with no answer after this long is a network error',
      default: '10s',
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
    'max-send-lag': Flags.integer({
      description:
        "flag the run when the generator's send lag or event-loop delay p99 exceeds this many ms",
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
    'poll-interval': Flags.integer({
      description: 'ms between two polls of one order',
      default: 1000,
      min: 50,
      helpGroup: 'FOLLOW',
    }),
    'follow-timeout': Flags.string({
      description: 'after the load, wait at most this long for orders to settle',
      default: '60s',
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
        "gate, e.g. 'p99<50', 'errors=0', 'error_rate<1%' (repeatable; exit 3 if missed)",
      multiple: true,
      helpGroup: 'CHECKS',
    }),
    html: Flags.string({ description: 'write a self-contained HTML report to this file' }),
    quiet: Flags.boolean({ description: 'no progress lines on stderr', default: false }),
  };

  async run(): Promise<FloodSummary> {
    const { flags } = await this.parse(Flood);
    const config = this.settings(flags);
    const jwtSecret = requireJwtSecret(config);
    const options = floodOptions(flags, jwtSecret, config.port);

    let pool: Pool | undefined;
    let redis: Redis | undefined;
    const abort = new AbortController();
    const stop = () => abort.abort();
    try {
      if (flags.audit) {
        // Connect before the load: an unreachable database is exit 2 now, not after the run.
        pool = await connectPostgres(config.databaseUrl, {
          max: 2,
          applicationName: 'fsale flood',
        });
        redis = await connectRedis(config.redisUrl, { name: 'fsale-flood' });
        const ctx = { pool, redis, keyPrefix: config.keyPrefix };
        options.audit = async () =>
          runAudit(
            {
              ...ctx,
              ledger: flags.gateway ? await fetchLedger(config.gatewayUrl) : undefined,
            },
            { productId: flags.product },
          );
      }
      const tty = process.stderr.isTTY;
      if (options.startAt !== undefined && !flags.quiet)
        process.stderr.write(
          `waiting for --start-at ${new Date(options.startAt).toISOString()} (part ${options.slice.index + 1}/${options.slice.count})\n`,
        );
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const summary = await runFlood(
        options,
        {
          onProgress: flags.quiet
            ? undefined
            : (p) =>
                process.stderr.write(
                  tty ? `\r\x1b[2K${renderProgress(p)}` : `${renderProgress(p)}\n`,
                ),
        },
        abort.signal,
      );
      if (tty && !flags.quiet) process.stderr.write('\r\x1b[2K');
      if (flags.html !== undefined) await writeFile(flags.html, renderHtmlReport(summary));
      if (!this.jsonEnabled()) {
        this.log(renderSummary(summary));
        if (flags.html !== undefined) this.log(`report: ${flags.html}`);
      }
      process.exitCode = summary.verdict.exitCode;
      return summary;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      redis?.disconnect();
      await pool?.end();
    }
  }
}

interface FloodFlags {
  url?: string | undefined;
  product: string;
  qty: number;
  rate?: number | undefined;
  stages?: string | undefined;
  connections?: number | undefined;
  ramp?: string | undefined;
  spike?: string[] | undefined;
  arrivals: string;
  duration?: string | undefined;
  requests?: number | undefined;
  users: number;
  'user-prefix'?: string | undefined;
  'retry-ratio': string;
  'double-click': boolean;
  seed?: number | undefined;
  timeout: string;
  'max-in-flight': number;
  pipelining: number;
  'max-send-lag': number;
  follow: boolean;
  'follow-streams': number;
  'poll-interval': number;
  'follow-timeout': string;
  threshold?: string[] | undefined;
  threads?: number | undefined;
  part?: string | undefined;
  'start-at'?: string | undefined;
}

/** Flags to engine options; a malformed shape or threshold is a usage error (exit 2). */
function floodOptions(flags: FloodFlags, jwtSecret: string, port: number): FloodOptions {
  try {
    return buildOptions(flags, jwtSecret, port);
  } catch (error) {
    if (
      error instanceof ShapeSyntaxError ||
      error instanceof ThresholdSyntaxError ||
      error instanceof SliceSyntaxError
    )
      throw new UsageError(error.message);
    throw error;
  }
}

function buildOptions(flags: FloodFlags, jwtSecret: string, port: number): FloodOptions {
  const url = flags.url ?? `http://127.0.0.1:${port}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url must be an http URL, got ${url}`);
  }
  if (parsed.protocol !== 'http:')
    throw new UsageError(
      `--url must be an http:// URL (the load engine speaks plain HTTP/1.1), got ${url}`,
    );
  if (!PRODUCT_ID.test(flags.product))
    throw new UsageError(
      `--product must be 1-64 letters, digits, '_' or '-', got ${flags.product}`,
    );
  const retryRatio = Number(flags['retry-ratio']);
  if (!(retryRatio >= 0 && retryRatio < 1))
    throw new UsageError(
      `--retry-ratio must be a fraction from 0 to below 1, got ${flags['retry-ratio']}`,
    );

  const stages = flags.stages === undefined ? undefined : parseStages(flags.stages);
  const durationSeconds =
    flags.requests === undefined
      ? flags.duration === undefined && stages !== undefined
        ? stagesSeconds(stages)
        : parseSeconds(flags.duration ?? '10s', '--duration')
      : undefined;
  if (durationSeconds !== undefined && !(durationSeconds > 0))
    throw new UsageError('--duration must be positive');
  if (flags.spike !== undefined && flags.rate === undefined && stages === undefined)
    throw new UsageError('--spike needs --rate or --stages (it multiplies an open-model rate)');
  let model: LoadModel;
  if (stages !== undefined) {
    model = {
      kind: 'open',
      shape: {
        rate: Math.max(...stages.map((stage) => stage.target)),
        rampSeconds: 0,
        spikes: (flags.spike ?? []).map(parseSpike),
        stages,
      },
      arrivals: flags.arrivals === 'poisson' ? 'poisson' : 'uniform',
      durationSeconds,
      requests: flags.requests,
    };
  } else if (flags.rate !== undefined) {
    model = {
      kind: 'open',
      shape: {
        rate: flags.rate,
        rampSeconds: flags.ramp === undefined ? 0 : parseSeconds(flags.ramp, '--ramp'),
        spikes: (flags.spike ?? []).map(parseSpike),
      },
      arrivals: flags.arrivals === 'poisson' ? 'poisson' : 'uniform',
      durationSeconds,
      requests: flags.requests,
    };
  } else if (flags.connections !== undefined) {
    if (flags['double-click'])
      throw new UsageError(
        '--double-click needs --rate: a closed-model connection has one request in flight, so it cannot send a pair at once',
      );
    if (flags.requests !== undefined && flags.requests < flags.connections)
      throw new UsageError('--requests must be at least --connections');
    model = {
      kind: 'closed',
      connections: flags.connections,
      durationSeconds,
      requests: flags.requests,
    };
  } else {
    throw new UsageError(
      'give --rate <arrivals/s> or --stages <duration:rate,...> (open model), or --connections <n> (closed model)',
    );
  }

  const open = model.kind === 'open';
  if (!open && (flags.threads ?? 1) > 1)
    throw new UsageError(
      '--threads needs the open model (--rate or --stages): closed-model connections are one loop',
    );
  if (!open && flags.part !== undefined)
    throw new UsageError('--part needs the open model (--rate or --stages)');
  const slice = flags.part === undefined ? WHOLE : parsePart(flags.part);
  const startAt =
    flags['start-at'] === undefined ? undefined : parseStartAt(flags['start-at'], Date.now());
  // Every part must walk the same schedule (Poisson gaps and retries are drawn from the seed).
  if (slice.count > 1 && flags.seed === undefined && startAt === undefined)
    throw new UsageError(
      '--part needs --seed N (the same on every part) or --start-at, which seeds it, so that every part walks the same schedule',
    );
  const seed = flags.seed ?? (startAt === undefined ? randomInt(2 ** 31) : startAt % 2 ** 31);

  const runId = randomBytes(4).toString('hex');
  const userPrefix = flags['user-prefix'] ?? `flood-${runId}-`;
  if (!/^[A-Za-z0-9_.@-]{0,100}$/.test(userPrefix))
    throw new UsageError(
      `--user-prefix must be up to 100 letters, digits, or . _ @ -, got ${userPrefix}`,
    );
  return {
    url: parsed,
    productId: flags.product,
    qty: flags.qty,
    model,
    users: flags.users,
    userPrefix,
    keyPrefix: `flood-${runId}-`,
    jwtSecret,
    retryRatio,
    doubleClick: flags['double-click'],
    seed,
    timeoutMs: parseSeconds(flags.timeout, '--timeout') * 1000,
    maxInFlight: flags['max-in-flight'],
    pipelining: flags.pipelining,
    slice,
    threads: open ? (flags.threads ?? defaultThreads()) : 1,
    startAt,
    maxSendLagMs: flags['max-send-lag'],
    follow: flags.follow
      ? {
          maxStreams: flags['follow-streams'],
          pollIntervalMs: flags['poll-interval'],
          pollConcurrency: 16,
          timeoutMs: parseSeconds(flags['follow-timeout'], '--follow-timeout') * 1000,
        }
      : undefined,
    thresholds: (flags.threshold ?? []).map((t) => parseThreshold(t, OUTCOME_CLASSES)),
    audit: undefined,
    auditAttempts: 3,
    auditRetryDelayMs: 2_000,
    preflight: true,
  };
}
