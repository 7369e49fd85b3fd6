// `fsale flood`'s flags to the load engine's options: every check a flag's value needs beyond
// its type, each a usage error (exit 2) that names the flag.
import { randomBytes, randomInt } from 'node:crypto';
import { UsageError } from '../domain/errors.js';
import { PRODUCT_ID } from '../domain/ids.js';
import { parseSpike, parseStages, ShapeSyntaxError, stagesSeconds } from '../load/arrivals.js';
import type { FloodOptions, LoadModel } from '../load/flood.js';
import { OUTCOME_CLASSES } from '../load/outcomes.js';
import { defaultThreads } from '../load/flood-thread.js';
import { parsePart, parseStartAt, SliceSyntaxError, WHOLE } from '../load/slices.js';
import { parseThreshold, ThresholdSyntaxError } from '../load/thresholds.js';
import type { FloodFlags } from './flood-flags.js';

/** Flags to engine options; a malformed shape or threshold is a usage error (exit 2). */
export function floodOptions(flags: FloodFlags, jwtSecret: string, port: number): FloodOptions {
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
        : (flags.duration ?? 10_000) / 1000
      : undefined;
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
        rampSeconds: (flags.ramp ?? 0) / 1000,
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
    timeoutMs: flags.timeout,
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
          timeoutMs: flags['follow-timeout'],
        }
      : undefined,
    thresholds: (flags.threshold ?? []).map((t) => parseThreshold(t, OUTCOME_CLASSES)),
    audit: undefined,
    auditAttempts: 3,
    auditRetryDelayMs: 2_000,
    preflight: true,
  };
}
