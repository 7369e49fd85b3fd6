// bench/all.ts — every benchmark, one after another, each in its own process with --json, so
// that no two of them share the machine's two cores. Writes bench/results.json, prints one
// table, and rewrites the README's Performance block from the same figures. `--only` runs the
// benchmarks named and replaces just their rows in bench/results.json (each benchmark keeps
// the date it was measured). Usage:
//   npm run bench [-- --only buy,modes] [--no-readme]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, printTable, rewriteBlock, type Machine } from './lib.js';

/** One line of the comparison: what was measured, and against what. */
interface Row {
  benchmark: string;
  case: string;
  throughput: number;
  unit: string;
  p50Ms: number | null;
  p99Ms: number | null;
  /** throughput / baseline throughput, or for latency-bound cases the measured / target. */
  ratio: number | null;
  ratioTo: string;
}

interface Benchmark {
  name: string;
  script: string;
  args: string[];
  rows: (summary: unknown) => Row[];
}

const root = fileURLToPath(new URL('..', import.meta.url));

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

function field(value: unknown, ...path: string[]): unknown {
  let at: unknown = value;
  for (const key of path) {
    if (typeof at !== 'object' || at === null || !(key in at))
      throw new Error(`benchmark summary has no ${path.join('.')}`);
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

interface LoadRow {
  name: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const BENCHMARKS: Benchmark[] = [
  {
    name: 'buy',
    script: 'bench/buy.ts',
    args: [],
    rows: (summary) => {
      const results = field(summary, 'results') as LoadRow[];
      const bare = results[0]?.requestsPerSecond ?? NaN;
      return results.map((r) => ({
        benchmark: 'buy',
        case: r.name,
        throughput: r.requestsPerSecond,
        unit: 'req/s',
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        ratio: round(r.requestsPerSecond / bare),
        ratioTo: 'bare Fastify route (a)',
      }));
    },
  },
  {
    name: 'drain',
    script: 'bench/drain.ts',
    args: [],
    rows: (summary) =>
      (
        field(summary, 'results') as {
          batch: number;
          concurrency: number;
          orders: number;
          ordersPerS: number;
          batchP50Ms: number;
          batchP99Ms: number;
        }[]
      ).map((r) => ({
        benchmark: 'drain',
        case: `${r.orders} orders, batch ${r.batch}, ${r.concurrency} in flight`,
        throughput: r.ordersPerS,
        unit: 'orders/s',
        p50Ms: r.batchP50Ms,
        p99Ms: r.batchP99Ms,
        ratio: round(r.ordersPerS / 20_000),
        ratioTo: 'target 20,000 orders/s',
      })),
  },
  {
    name: 'sse',
    script: 'bench/sse.ts',
    args: [],
    rows: (summary) => {
      const p99 = field(summary, 'lagMs', 'p99') as number;
      return [
        {
          benchmark: 'sse',
          case: `${field(summary, 'clients') as number} clients, a change every ${field(summary, 'everyMs') as number} ms`,
          throughput: field(summary, 'eventsPerSecond') as number,
          unit: 'events/s',
          p50Ms: field(summary, 'lagMs', 'p50') as number,
          p99Ms: p99,
          ratio: round(p99 / 250),
          ratioTo: 'p99 lag / target 250 ms',
        },
      ];
    },
  },
  {
    name: 'modes',
    script: 'bench/modes.ts',
    args: [],
    rows: (summary) => {
      const rows = field(summary, 'rows') as {
        mode: string;
        case: string;
        requestsPerSecond: number;
        p50Ms: number | null;
        p99Ms: number | null;
        errors: number;
        pgConnections: number;
      }[];
      const queue = new Map(rows.filter((r) => r.mode === 'queue').map((r) => [r.case, r]));
      return rows.map((r) => {
        const base = queue.get(r.case);
        return {
          benchmark: 'modes',
          case: `${r.mode}: ${r.case} (errors ${r.errors}, PG connections ${r.pgConnections})`,
          throughput: r.requestsPerSecond,
          unit: 'req/s',
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          ratio: base === undefined ? null : round(r.requestsPerSecond / base.requestsPerSecond),
          ratioTo: 'queue mode, same case',
        };
      });
    },
  },
  {
    name: 'abuse',
    script: 'bench/abuse.ts',
    args: [],
    rows: (summary) => {
      const rows = field(summary, 'rows') as {
        case: string;
        requestsPerSecond: number;
        p50Ms: number;
        p99Ms: number;
        errors: number;
      }[];
      const alone = rows[0]?.p99Ms ?? NaN;
      return rows.map((r) => ({
        benchmark: 'abuse',
        case: `${r.case} (errors ${r.errors})`,
        throughput: r.requestsPerSecond,
        unit: 'req/s',
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        ratio: round(r.p99Ms / alone),
        ratioTo: 'p99 without abuse (target ≤ 3)',
      }));
    },
  },
  {
    name: 'cluster',
    script: 'bench/cluster.ts',
    args: [],
    rows: (summary) => {
      const results = field(summary, 'results') as (LoadRow & { redisCpuUsPerBuy: number })[];
      const paced = field(summary, 'paced') as LoadRow[];
      const pacedRate = Number(field(summary, 'pacedRate'));
      const node = results[0]?.requestsPerSecond ?? NaN;
      const nodeP99 = paced[0]?.p99Ms ?? NaN;
      return [
        ...results.map((r) => ({
          benchmark: 'cluster',
          case: `${r.name} (Redis CPU ${r.redisCpuUsPerBuy} µs/buy)`,
          throughput: r.requestsPerSecond,
          unit: 'buys/s',
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          ratio: round(r.requestsPerSecond / node),
          ratioTo: 'one Redis node (a)',
        })),
        ...paced.map((r) => ({
          benchmark: 'cluster',
          case: `${r.name}, paced at ${pacedRate.toLocaleString('en')}/s`,
          throughput: r.requestsPerSecond,
          unit: 'buys/s',
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          ratio: round(r.p99Ms / nodeP99),
          ratioTo: 'p99 of (a), paced',
        })),
      ];
    },
  },
];

function runJson(script: string, args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', `${root}${script}`, ...args, '--json'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        const summary: unknown = JSON.parse(out);
        if (code !== 0) process.stderr.write(`bench: ${script} exited with ${code}\n`);
        resolve(summary);
      } catch {
        reject(new Error(`${script} exited with ${code} and no JSON summary`));
      }
    });
  });
}

interface Results {
  version: number;
  machine: Machine;
  /** When each benchmark was last measured (ISO date); machine.date when absent. */
  measured?: Record<string, string>;
  rows: Row[];
  summaries: Record<string, unknown>;
}

function renderMarkdown(results: Results): string {
  const m = results.machine;
  const cell = (v: number | null) => (v === null ? '' : String(v));
  const day = m.date.slice(0, 10);
  const others = Object.entries(results.measured ?? {})
    .filter(([, date]) => date.slice(0, 10) !== day)
    .map(([name, date]) => `${name} ${date.slice(0, 10)}`);
  return [
    `Measured ${day}${others.length > 0 ? ` (${others.join(', ')})` : ''} on ${m.cores} cores (${m.cpu}), Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}; every server and its load generator on the same machine.`,
    '',
    '| benchmark | case | throughput | p50 ms | p99 ms | ratio | ratio to |',
    '|---|---|---:|---:|---:|---:|---|',
    ...results.rows.map(
      (r) =>
        `| ${r.benchmark} | ${r.case} | ${r.throughput.toLocaleString('en-US')} ${r.unit} | ${cell(r.p50Ms)} | ${cell(r.p99Ms)} | ${cell(r.ratio)} | ${r.ratioTo} |`,
    ),
  ].join('\n');
}

/** The last results, for `--only` to keep the rows of the benchmarks it does not run. */
function previousResults(): Results | undefined {
  const file = `${root}bench/results.json`;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Results) : undefined;
}

const README_START = '<!-- bench:start (written by npm run bench) -->';
const README_END = '<!-- bench:end -->';

/** Replaces the README's Performance block, formatted as `npm run lint` expects. */
async function rewriteReadme(markdown: string): Promise<void> {
  await rewriteBlock(`${root}README.md`, README_START, README_END, markdown);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      'no-readme': { type: 'boolean', default: false },
    },
  });
  const only = values.only?.split(',');
  const unknown = only?.filter((name) => !BENCHMARKS.some((b) => b.name === name)) ?? [];
  if (unknown.length > 0)
    throw new Error(
      `unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`,
    );
  const selected = BENCHMARKS.filter((b) => only === undefined || only.includes(b.name));

  const summaries: Record<string, unknown> = {};
  const rows: Row[] = [];
  for (const benchmark of selected) {
    process.stderr.write(`bench: ${benchmark.name} (${benchmark.script})\n`);
    const summary = await runJson(benchmark.script, benchmark.args);
    summaries[benchmark.name] = summary;
    rows.push(...benchmark.rows(summary));
  }
  const now = await machine(
    process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  );
  const previous = only === undefined ? undefined : previousResults();
  const ran = new Set(selected.map((b) => b.name));
  const measured = Object.fromEntries(selected.map((b) => [b.name, now.date]));
  // Kept from the last run: every benchmark not run now, in the table's order.
  const results: Results =
    previous === undefined
      ? { version: 1, machine: now, measured, rows, summaries }
      : {
          version: 1,
          machine: previous.machine,
          measured: { ...previous.measured, ...measured },
          rows: BENCHMARKS.flatMap((b) =>
            ran.has(b.name)
              ? rows.filter((r) => r.benchmark === b.name)
              : previous.rows.filter((r) => r.benchmark === b.name),
          ),
          summaries: { ...previous.summaries, ...summaries },
        };
  writeFileSync(`${root}bench/results.json`, `${JSON.stringify(results, null, 2)}\n`);
  printTable(
    ['benchmark', 'case', 'throughput', 'p50 ms', 'p99 ms', 'ratio', 'ratio to'],
    results.rows.map((r) => [
      r.benchmark,
      r.case,
      `${r.throughput.toLocaleString('en-US')} ${r.unit}`,
      r.p50Ms ?? '',
      r.p99Ms ?? '',
      r.ratio ?? '',
      r.ratioTo,
    ]),
  );
  const m = results.machine;
  console.log(
    `${m.cores} cores, Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}, ${m.date}; written to bench/results.json`,
  );
  if (!values['no-readme']) {
    await rewriteReadme(renderMarkdown(results));
    console.log('README.md Performance section updated');
  }
}

await main();
