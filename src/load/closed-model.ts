import autocannon from 'autocannon';
import type { TargetOptions } from './open-model.js';
import type { Attempt, PurchasePlan } from './plan.js';
import type { FloodRecorder } from './recorder.js';

// The closed model is what autocannon is built for: N connections, each sending its next
// request when the previous one is answered. We use its engine as is and plug the flash-sale
// parts into its hooks: setupRequest picks the buyer, token and key of each request and
// onResponse classifies the answer. Latency is measured from the write (there is no intended
// time in a closed model: a slow answer delays the next request, which is exactly the
// coordinated omission the open model avoids).

export interface ClosedModelOptions {
  connections: number;
  /** Stop sending after this many ms (each connection finishes its request in flight)... */
  durationMs: number | undefined;
  /** ...or after this many requests. */
  requests: number | undefined;
}

/**
 * Per-request state. With a one-request sequence autocannon gives each request a fresh
 * context object before calling setupRequest and hands that same object to onResponse, so
 * the context ties an answer to its request (one request in flight per connection).
 */
interface RequestContext {
  attempt?: Attempt | undefined;
  /** Built after the stop: autocannon may write it on a closing connection; count it only if answered. */
  late?: boolean;
}

/** autocannon's Client also has `destroy` and emits `connError`; its typings list neither. */
interface StoppableClient extends autocannon.Client {
  destroy?: () => void;
}

function header(headers: Record<string, unknown> | undefined, name: string): unknown {
  for (const [key, value] of Object.entries(headers ?? {}))
    if (key.toLowerCase() === name) return value;
  return undefined;
}

export async function runClosedModel(
  target: TargetOptions,
  plan: PurchasePlan,
  recorder: FloodRecorder,
  options: ClosedModelOptions,
  signal: AbortSignal,
): Promise<void> {
  let stopping = false;
  const outstanding = new Set<Attempt>();
  const stop = () => (stopping = true);
  const timer = options.durationMs === undefined ? undefined : setTimeout(stop, options.durationMs);
  signal.addEventListener('abort', stop, { once: true });

  try {
    await autocannon({
      url: target.url.origin,
      connections: options.connections,
      timeout: Math.max(1, Math.ceil(target.timeoutMs / 1000)),
      // autocannon's own clock is only a safety net: our timer stops each connection after
      // its answer, so no request is cut off mid-flight.
      ...(options.requests === undefined
        ? { duration: Math.ceil(((options.durationMs ?? 0) + target.timeoutMs) / 1000) + 5 }
        : { amount: options.requests }),
      method: 'POST',
      body: plan.body,
      setupClient: (client: StoppableClient) => {
        // Registered before autocannon's own listeners: on the answer that follows the stop,
        // the connection closes before autocannon writes the next request.
        const closeIfStopping = () => {
          if (stopping) client.destroy?.();
        };
        const events: NodeJS.EventEmitter = client;
        events.on('response', closeIfStopping);
        events.on('connError', closeIfStopping);
      },
      requests: [
        {
          method: 'POST',
          path: '/order/buy',
          setupRequest: (request, context) => {
            const ctx = context as RequestContext;
            const { purchase, kind } = plan.next();
            const now = performance.now();
            const attempt: Attempt = { purchase, kind, intendedAt: now };
            ctx.attempt = attempt;
            if (stopping) ctx.late = true;
            else {
              recorder.recordSend(kind, now);
              outstanding.add(attempt);
            }
            return { ...request, headers: plan.requestHeaders(purchase), body: plan.body };
          },
          onResponse: (status, body, context, headers) => {
            const ctx = context as RequestContext;
            const attempt = ctx.attempt;
            if (attempt === undefined) return;
            if (ctx.late === true) recorder.recordSend(attempt.kind, attempt.intendedAt);
            outstanding.delete(attempt);
            ctx.attempt = undefined;
            recorder.recordAnswer(
              attempt,
              status,
              body,
              header(headers, 'idempotent-replayed') === 'true',
              performance.now(),
            );
          },
        },
      ],
    });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    signal.removeEventListener('abort', stop);
  }
  // autocannon drops a request it gave up on (timeout, broken connection) and sends the next
  // one; those never got an answer. It gave up at the timeout at the latest.
  const now = performance.now();
  for (const attempt of outstanding)
    recorder.recordNetworkError(
      attempt,
      new Error('no answer (timeout or connection lost)'),
      Math.min(now, attempt.intendedAt + target.timeoutMs),
    );
}
