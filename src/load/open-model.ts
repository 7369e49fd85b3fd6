import { Agent, request } from 'node:http';
import { arrivalTimes, type ArrivalProcess, type ArrivalSchedule } from './arrivals.js';
import type { Attempt, PurchasePlan } from './plan.js';
import type { FloodRecorder } from './recorder.js';

// The open model: arrivals come at the times the schedule fixed in advance, whether or not
// earlier requests were answered, like a crowd that does not wait for each other. autocannon
// cannot do this (each of its connections sends its next request only after the previous
// answer), so this is our own loop on node:http with a keep-alive Agent.

export interface TargetOptions {
  url: URL;
  timeoutMs: number;
}

export interface OpenModelOptions {
  schedule: ArrivalSchedule;
  process: ArrivalProcess;
  random: () => number;
  /** Stop after this many arrivals (--requests); undefined: at the schedule's horizon. */
  arrivals: number | undefined;
  /** Every arrival is two simultaneous requests with one key. */
  doubleClick: boolean;
  /** Requests out at once; beyond it arrivals wait (and the run is flagged). */
  maxInFlight: number;
}

/** Sends one buy; calls back exactly once, with the answer or the network error. */
export function sendBuy(
  agent: Agent,
  target: TargetOptions,
  plan: PurchasePlan,
  attempt: Attempt,
  recorder: FloodRecorder,
  done: () => void,
): void {
  let finished = false;
  const finish = (record: () => void) => {
    if (finished) return;
    finished = true;
    record();
    done();
  };
  const req = request(
    {
      agent,
      protocol: target.url.protocol,
      hostname: target.url.hostname,
      port: target.url.port,
      path: '/order/buy',
      method: 'POST',
      headers: plan.requestHeaders(attempt.purchase),
      timeout: target.timeoutMs,
    },
    (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        finish(() =>
          recorder.recordAnswer(
            attempt,
            res.statusCode ?? 0,
            body,
            res.headers['idempotent-replayed'] === 'true',
            performance.now(),
          ),
        ),
      );
      res.on('error', (error) =>
        finish(() => recorder.recordNetworkError(attempt, error, performance.now())),
      );
    },
  );
  req.on('timeout', () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
  req.on('error', (error) =>
    finish(() => recorder.recordNetworkError(attempt, error, performance.now())),
  );
  req.end(plan.body);
}

export function buyAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

/** Runs the schedule to its end (or until `signal` aborts) and waits for the last answers. */
export function runOpenModel(
  target: TargetOptions,
  plan: PurchasePlan,
  recorder: FloodRecorder,
  options: OpenModelOptions,
  signal: AbortSignal,
): Promise<void> {
  const agent = buyAgent(options.maxInFlight);
  const nextTime = arrivalTimes(
    options.schedule,
    options.process,
    options.random,
    options.arrivals,
  );
  const start = recorder.startedAt;
  // Arrivals waiting for a free slot (only when --max-in-flight requests are out).
  const waiting: (Attempt | undefined)[] = [];
  let waitingHead = 0;
  let next = nextTime();
  let timer: NodeJS.Timeout | undefined;

  return new Promise((resolve) => {
    const finishIfDone = () => {
      if (next === undefined && recorder.inFlight === 0 && waitingHead === waiting.length) {
        agent.destroy();
        resolve();
      }
    };
    const dispatch = (attempt: Attempt) => {
      const now = performance.now();
      recorder.recordSend(attempt.kind, now, now - attempt.intendedAt);
      sendBuy(agent, target, plan, attempt, recorder, onDone);
    };
    const onDone = () => {
      if (waitingHead < waiting.length && recorder.inFlight < options.maxInFlight) {
        const attempt = waiting[waitingHead];
        waiting[waitingHead] = undefined;
        waitingHead += 1;
        if (waitingHead === waiting.length) waiting.length = waitingHead = 0;
        if (attempt !== undefined) dispatch(attempt);
      }
      finishIfDone();
    };
    const arrive = (attempt: Attempt) => {
      if (recorder.inFlight < options.maxInFlight && waitingHead === waiting.length)
        dispatch(attempt);
      else {
        recorder.inFlightCapHits += 1;
        waiting.push(attempt);
      }
    };
    const pump = () => {
      timer = undefined;
      const now = performance.now();
      // Everything due is sent now, each with its own intended time: a late timer makes
      // sends late (measured as send lag), never latencies shorter.
      while (next !== undefined && start + next <= now) {
        const intendedAt = start + next;
        const { purchase, kind } = plan.next();
        arrive({ purchase, kind, intendedAt });
        if (options.doubleClick && kind === 'first')
          arrive({ purchase, kind: 'double_click', intendedAt });
        next = nextTime();
      }
      if (next === undefined) return finishIfDone();
      // Node timers fire at 1 ms granularity: due arrivals are sent in batches, no busy loop.
      timer = setTimeout(pump, Math.max(1, Math.floor(start + next - now)));
    };
    signal.addEventListener(
      'abort',
      () => {
        next = undefined;
        if (timer !== undefined) clearTimeout(timer);
        // Arrivals not yet sent are dropped; what is out gets its answer.
        waiting.length = 0;
        waitingHead = 0;
        finishIfDone();
      },
      { once: true },
    );
    if (signal.aborted) next = undefined;
    pump();
  });
}
