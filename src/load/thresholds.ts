// Pass/fail gates for a flood: `--threshold 'p99<50ms' --threshold 'errors=0'`.
//
// Grammar:  threshold := metric op number [unit]
//           metric    := name | latency ':' class        (p99:accepted, p999:sold_out)
//           op        := '<' | '<=' | '>' | '>=' | '=' | '==' | '!='
//           unit      := 'ms' | 's' | 'm' | 'h'  (time metrics, required: the one duration
//                                                 syntax of every time flag, src/cli/duration.ts)
//                      | '%'          (ratio metrics; default a fraction: 0.01 = 1%)
// Whitespace around the operator is allowed. A metric that was not measured in the run (say
// confirm_p99 without --follow) misses its threshold.

import { DURATION_FORMS, MS_PER_UNIT } from '../cli/duration.js';

export type MetricKind = 'ms' | 'count' | 'ratio' | 'per_second';

export interface MetricInfo {
  kind: MetricKind;
  description: string;
}

export const LATENCY_METRICS = ['p50', 'p90', 'p99', 'p999', 'max', 'mean'] as const;
export type LatencyMetric = (typeof LATENCY_METRICS)[number];

/** Every metric a threshold can name (latency ones also take a `:class` suffix). */
export const METRICS: Readonly<Record<string, MetricInfo>> = {
  p50: { kind: 'ms', description: 'median latency of every answered request' },
  p90: { kind: 'ms', description: '90th percentile latency of every answered request' },
  p99: { kind: 'ms', description: '99th percentile latency of every answered request' },
  p999: { kind: 'ms', description: '99.9th percentile latency of every answered request' },
  max: { kind: 'ms', description: 'slowest answered request' },
  mean: { kind: 'ms', description: 'mean latency of every answered request' },
  sent: { kind: 'count', description: 'HTTP requests sent' },
  errors: {
    kind: 'count',
    description:
      'network errors + 5xx other than a shed 503 + 503 outcome_unknown + 4xx other than 409/429 + other statuses',
  },
  error_rate: { kind: 'ratio', description: 'errors / sent' },
  shed: { kind: 'count', description: '429 + 503 answers (load shedding)' },
  shed_rate: { kind: 'ratio', description: 'shed / sent' },
  accepted: { kind: 'count', description: '202 (or sync mode 201) answers, replays included' },
  orders: { kind: 'count', description: 'distinct order ids accepted' },
  sold_out: { kind: 'count', description: '409 sold_out answers' },
  conflict: { kind: 'count', description: '409 answers other than sold_out' },
  rate_limited: { kind: 'count', description: '429 answers' },
  overloaded: { kind: 'count', description: '503 answers (overloaded or Redis unavailable)' },
  outcome_unknown: {
    kind: 'count',
    description: '503 outcome_unknown: the buy may have been accepted (Redis answer lost)',
  },
  client_error: { kind: 'count', description: '4xx answers other than 409 and 429' },
  server_error: { kind: 'count', description: '5xx answers other than 503' },
  network_error: { kind: 'count', description: 'requests with no HTTP answer' },
  replays: { kind: 'count', description: 'answers carrying Idempotent-Replayed: true' },
  second_reservations: {
    kind: 'count',
    description: 'idempotency keys that got a second distinct order id (must be 0)',
  },
  rate: { kind: 'per_second', description: 'achieved send rate' },
  throughput: { kind: 'per_second', description: 'answers per second' },
  send_lag_p99: {
    kind: 'ms',
    description: '99th percentile of how late the generator sent (its own lag)',
  },
  time_to_sell_out: { kind: 'ms', description: 'first 202 to first sign of sold out' },
  confirm_p50: { kind: 'ms', description: 'median click-to-confirmation time (--follow)' },
  confirm_p99: { kind: 'ms', description: '99th percentile click-to-confirmation (--follow)' },
  fulfilled_rate: { kind: 'per_second', description: 'orders confirmed per second (--follow)' },
  unsettled: { kind: 'count', description: 'followed orders not terminal at the end (--follow)' },
};

export type Operator = '<' | '<=' | '>' | '>=' | '=' | '!=';

export interface Threshold {
  expression: string;
  metric: string;
  op: Operator;
  /** In the metric's base unit (ms, count, fraction, per second). */
  limit: number;
}

export interface ThresholdResult extends Threshold {
  actual: number | null;
  ok: boolean;
}

export class ThresholdSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ThresholdSyntaxError';
  }
}

/** The metric's kind, or undefined for an unknown name; `p99:accepted` is a latency metric. */
export function metricKind(metric: string, classes: readonly string[]): MetricKind | undefined {
  const [name, cls, extra] = metric.split(':');
  if (name === undefined || extra !== undefined) return undefined;
  if (cls !== undefined)
    return (LATENCY_METRICS as readonly string[]).includes(name) && classes.includes(cls)
      ? 'ms'
      : undefined;
  return METRICS[name]?.kind;
}

export function parseThreshold(expression: string, classes: readonly string[]): Threshold {
  const match =
    /^\s*([a-z0-9_]+(?::[a-z_]+)?)\s*(<=|>=|==|!=|<|>|=)\s*(-?(?:\d+(?:\.\d*)?|\.\d+))\s*(ms|s|m|h|%)?\s*$/.exec(
      expression,
    );
  if (match === null) {
    throw new ThresholdSyntaxError(
      `threshold ${JSON.stringify(expression)} must look like 'p99<50ms', 'p99:accepted<=0.5s', 'errors=0' or 'error_rate<1%'`,
    );
  }
  const [, metric = '', rawOp = '', number = '', unit] = match;
  const kind = metricKind(metric, classes);
  if (kind === undefined) {
    throw new ThresholdSyntaxError(
      `unknown metric ${JSON.stringify(metric)} in ${JSON.stringify(expression)}; known: ${Object.keys(METRICS).join(', ')} (latency ones also as p99:<class>, class one of ${classes.join(', ')})`,
    );
  }
  let limit = Number(number);
  if (kind === 'ms') {
    if (unit === undefined || unit === '%')
      throw new ThresholdSyntaxError(
        `${metric} is a time: give its unit in ${JSON.stringify(expression.trim())} (${metric}<${number}ms, or ${DURATION_FORMS})`,
      );
    limit *= MS_PER_UNIT[unit as keyof typeof MS_PER_UNIT];
  } else if (unit !== undefined && unit !== '%') {
    throw new ThresholdSyntaxError(`${metric} is not a time; drop the unit in ${expression}`);
  } else if (unit === '%') {
    if (kind !== 'ratio')
      throw new ThresholdSyntaxError(
        `${metric} is not a ratio; '%' does not apply in ${expression}`,
      );
    limit /= 100;
  }
  const op: Operator = rawOp === '==' ? '=' : (rawOp as Operator);
  return { expression: expression.trim(), metric, op, limit };
}

export function compare(actual: number, op: Operator, limit: number): boolean {
  switch (op) {
    case '<':
      return actual < limit;
    case '<=':
      return actual <= limit;
    case '>':
      return actual > limit;
    case '>=':
      return actual >= limit;
    case '=':
      return actual === limit;
    case '!=':
      return actual !== limit;
  }
}

/** Checks each threshold against the run's metrics; an unmeasured metric (null) misses. */
export function evaluateThresholds(
  thresholds: readonly Threshold[],
  metrics: Readonly<Record<string, number | null>>,
): ThresholdResult[] {
  return thresholds.map((t) => {
    const actual = metrics[t.metric] ?? null;
    return { ...t, actual, ok: actual !== null && compare(actual, t.op, t.limit) };
  });
}
