import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { FloodHooks, FloodOptions, FloodProgress } from './flood.js';
import { runSlice } from './flood-slice.js';
import { mergeSummaries } from './merge.js';
import { OUTCOME_CLASSES, type OutcomeClass } from './outcomes.js';
import { subSlice } from './slices.js';
import type { FloodSummary } from './summary.js';

// `flood --threads N`: the open model's schedule split by user between N worker threads
// (slices.ts), each with its own event loop, connections and histograms, all starting on one
// wall-clock instant; their summaries merge (merge.ts) into the run's. A thread needs a .js
// file to run: from dist/ each slice gets a real thread; from the TypeScript sources (tests)
// the slices run side by side in this thread, through the same split and the same merge.

/**
 * The default --threads: one per core but one, left to a server on the same machine (a
 * generator that starves the server it measures measures itself), at most 4 (beyond that a
 * flood is better split over machines with --part), at least 1.
 */
export function defaultThreads(cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(cores - 1, 4));
}

/** Thread i of n: its sub-slice, and its share of the run's connection and stream budgets. */
export function threadOptions(options: FloodOptions, index: number, count: number): FloodOptions {
  const share = (n: number) => (n === 0 ? 0 : Math.max(1, Math.ceil(n / count)));
  return {
    ...options,
    slice: subSlice(options.slice, { index, count }),
    threads: 1,
    maxInFlight: share(options.maxInFlight),
    follow:
      options.follow === undefined
        ? undefined
        : {
            ...options.follow,
            maxStreams: share(options.follow.maxStreams),
            pollConcurrency: share(options.follow.pollConcurrency),
          },
    audit: undefined,
    thresholds: [],
    preflight: false,
  };
}

/** The progress of every thread as one line's worth. */
export function sumProgress(
  parts: readonly (FloodProgress | undefined)[],
): FloodProgress | undefined {
  const known = parts.filter((p): p is FloodProgress => p !== undefined);
  const first = known[0];
  if (first === undefined) return undefined;
  const total = (pick: (p: FloodProgress) => number) => known.reduce((n, p) => n + pick(p), 0);
  const phases = ['load', 'follow', 'audit'] as const;
  const targets = known.map((p) => p.targetRate);
  const p99s = known.map((p) => p.p99LastSecond).filter((p): p is number => p !== null);
  const following = known.map((p) => p.following);
  return {
    // The run is in the earliest phase any thread is still in.
    phase: phases[Math.min(...known.map((p) => phases.indexOf(p.phase)))] ?? first.phase,
    elapsedSeconds: Math.max(...known.map((p) => p.elapsedSeconds)),
    targetRate: targets.some((t) => t === null) ? null : total((p) => p.targetRate ?? 0),
    sentLastSecond: total((p) => p.sentLastSecond),
    p99LastSecond: p99s.length === 0 ? null : Math.max(...p99s),
    sent: total((p) => p.sent),
    answered: total((p) => p.answered),
    inFlight: total((p) => p.inFlight),
    counts: Object.fromEntries(
      OUTCOME_CLASSES.map((c) => [c, total((p) => p.counts[c])]),
    ) as Record<OutcomeClass, number>,
    orders: total((p) => p.orders),
    following: following.every((f) => f === null) ? null : total((p) => p.following ?? 0),
  };
}

/** What a URL and a function become to cross into a thread. */
type ThreadOptions = Omit<FloodOptions, 'url' | 'audit'> & { url: string };

interface ThreadData {
  kind: 'flood-slice';
  options: ThreadOptions;
  initialStock: number | null;
}

type ToThread = { type: 'start'; wall: number; lateMs: number } | { type: 'abort' };

type FromThread =
  | { type: 'ready' }
  | { type: 'progress'; progress: FloodProgress }
  | { type: 'loaded' }
  | { type: 'done'; summary: FloodSummary }
  | { type: 'failed'; message: string };

interface SliceRun {
  onReady: () => void;
  onProgress: (progress: FloodProgress) => void;
  onLoaded: () => void;
  /** Resolves with the start's wall-clock time and how late it is for --start-at. */
  started: Promise<{ wall: number; lateMs: number }>;
  signal: AbortSignal;
}

const THREAD_FILE = new URL('./flood-thread.js', import.meta.url);

const sleepUntilPerf = (at: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.floor(at - performance.now()))));

function inThisThread(
  options: FloodOptions,
  initialStock: number | null,
  run: SliceRun,
): Promise<FloodSummary> {
  return runSlice(options, {
    initialStock,
    onProgress: run.onProgress,
    onLoaded: run.onLoaded,
    signal: run.signal,
    start: async () => {
      run.onReady();
      const { wall, lateMs } = await run.started;
      const at = wall - performance.timeOrigin;
      await sleepUntilPerf(at);
      return { at, lateMs };
    },
  });
}

function inAThread(
  options: FloodOptions,
  initialStock: number | null,
  run: SliceRun,
): Promise<FloodSummary> {
  const { url, audit: _audit, ...rest } = options;
  const data: ThreadData = {
    kind: 'flood-slice',
    options: { ...rest, url: url.href },
    initialStock,
  };
  const worker = new Worker(THREAD_FILE, { workerData: data });
  const post = (message: ToThread) => worker.postMessage(message);
  const abort = () => post({ type: 'abort' });
  run.signal.addEventListener('abort', abort, { once: true });
  void run.started.then((start) => post({ type: 'start', ...start }));
  return new Promise<FloodSummary>((resolve, reject) => {
    worker.on('message', (message: FromThread) => {
      switch (message.type) {
        case 'ready':
          return run.onReady();
        case 'progress':
          return run.onProgress(message.progress);
        case 'loaded':
          return run.onLoaded();
        case 'done':
          return resolve(message.summary);
        case 'failed':
          return reject(new Error(message.message));
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) =>
      reject(new Error(`a flood thread exited (${code}) before its summary`)),
    );
  }).finally(() => {
    run.signal.removeEventListener('abort', abort);
    void worker.terminate();
  });
}

/**
 * Runs options.slice in `threads` sub-slices that start together (at --start-at, or once
 * every one is prepared) and returns their merged summary (not judged, no audit).
 */
export async function runInThreads(
  options: FloodOptions,
  threads: number,
  initialStock: number | null,
  hooks: FloodHooks,
  signal: AbortSignal,
): Promise<FloodSummary> {
  const run = existsSync(fileURLToPath(THREAD_FILE)) ? inAThread : inThisThread;
  const latest: (FloodProgress | undefined)[] = Array.from({ length: threads });
  const progress = setInterval(() => {
    const merged = sumProgress(latest);
    if (merged !== undefined) hooks.onProgress?.(merged);
  }, 1000);
  let ready = 0;
  let loaded = 0;
  let release: (start: { wall: number; lateMs: number }) => void = () => undefined;
  const started = new Promise<{ wall: number; lateMs: number }>((resolve) => (release = resolve));
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpu: NodeJS.CpuUsage | undefined;
  void started.then(() => (cpuAtStart = process.cpuUsage()));
  try {
    const summaries = await Promise.all(
      Array.from({ length: threads }, (_, i) =>
        run(threadOptions(options, i, threads), initialStock, {
          signal,
          started,
          onProgress: (p) => (latest[i] = p),
          onReady: () => {
            ready += 1;
            if (ready < threads) return;
            // Every thread's clock agrees on the wall clock: they all start on one instant.
            const soon = Date.now() + 20;
            const wall = Math.max(soon, options.startAt ?? 0);
            release({ wall, lateMs: options.startAt === undefined ? 0 : wall - options.startAt });
          },
          onLoaded: () => {
            loaded += 1;
            if (loaded === threads && cpuAtStart !== undefined) cpu = process.cpuUsage(cpuAtStart);
          },
        }),
      ),
    );
    const merged = mergeSummaries(summaries, (_, i) => `thread ${i + 1}/${threads}`);
    // process.cpuUsage() counts every thread: each thread's own figure is the process's.
    const cpuSeconds = cpu === undefined ? 0 : (cpu.user + cpu.system) / 1e6;
    const sent = merged.requests.sent;
    return {
      ...merged,
      load: {
        ...merged.load,
        slice: { ...options.slice },
        threads,
        maxInFlight: options.maxInFlight,
      },
      generator: {
        ...merged.generator,
        cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
        cpuUsPerRequest: sent > 0 ? Math.round((cpuSeconds * 1e7) / sent) / 10 : null,
      },
    };
  } finally {
    clearInterval(progress);
  }
}

/** A flood thread itself: one slice, reported to the main thread. */
async function runThread(data: ThreadData, port: NonNullable<typeof parentPort>): Promise<void> {
  const send = (message: FromThread) => port.postMessage(message);
  const stop = new AbortController();
  let release: (start: { wall: number; lateMs: number }) => void = () => undefined;
  const started = new Promise<{ wall: number; lateMs: number }>((resolve) => (release = resolve));
  port.on('message', (message: ToThread) => {
    if (message.type === 'start') release({ wall: message.wall, lateMs: message.lateMs });
    else stop.abort();
  });
  try {
    const summary = await inThisThread(
      { ...data.options, url: new URL(data.options.url), audit: undefined },
      data.initialStock,
      {
        signal: stop.signal,
        started,
        onReady: () => send({ type: 'ready' }),
        onProgress: (progress) => send({ type: 'progress', progress }),
        onLoaded: () => send({ type: 'loaded' }),
      },
    );
    send({ type: 'done', summary });
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  }
  port.close();
}

const isFloodSlice = (data: unknown): data is ThreadData =>
  typeof data === 'object' && data !== null && (data as { kind?: unknown }).kind === 'flood-slice';

if (!isMainThread && parentPort !== null && isFloodSlice(workerData))
  void runThread(workerData, parentPort);
