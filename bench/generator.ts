// bench/generator.ts — what the load generators themselves cost, side by side in one run,
// against the same bare Fastify route (bench/servers/bare.ts, one process):
//   wrk         closed loop, one thread, --connections connections (when installed: apt wrk)
//   autocannon  closed loop, --connections connections, in this process
//   fsale flood open model (the CLI, one process), at rising fractions of what wrk reached in
//               the same round: its max sustained rate is the highest step it kept (not
//               flagged as limited, answers/s within 5 % of the target)
// For each: requests/s, the generator's CPU per request (wrk: `times` of its shell; autocannon:
// this process over the run; flood: its summary's load-phase figure) and flood's send lag
// p99. Rounds are taken in turn so that a slow spell of this shared VM hits every tool; the
// table shows each figure's range over the rounds, and the ratios are per round. Usage:
// --threads N runs flood with N worker threads (default 1: one core is the server's on a
// 2-core machine; `--threads 2` shows what a second thread buys when the cores are shared).
//   npm run bench:generator [-- --duration 5 --rounds 2 --connections 50 --threads 1 --json]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type { FloodSummary } from '../src/load/summary.js';
import { printTable, startServer, type ChildServer } from './lib.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    steps: { type: 'string', default: '0.25,0.5,0.7,0.9,1' },
    threads: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const duration = Number(args.duration);
const rounds = Number(args.rounds);
const connections = Number(args.connections);
const steps = args.steps.split(',').map(Number);
const threads = Number(args.threads);
if (
  !(duration >= 3) ||
  !Number.isInteger(rounds) ||
  rounds < 1 ||
  steps.some((s) => !(s > 0)) ||
  !Number.isInteger(threads) ||
  threads < 1
)
  throw new Error(
    '--duration >= 3 s, --rounds and --threads positive integers, --steps positive fractions',
  );
const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));

const root = fileURLToPath(new URL('..', import.meta.url));
const BODY = '{"productId":"p1","qty":1}';

interface Run {
  ok: boolean;
  output: string;
}
function run(command: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ ok: code === 0, output }));
  });
}

const hasWrk = (await run('sh', ['-c', 'command -v wrk'])).ok;

interface ToolResult {
  requestsPerSecond: number;
  cpuUsPerRequest: number;
}

/** wrk in a shell whose `times` reports the CPU its child used (user + system). */
async function wrk(url: string, script: string): Promise<ToolResult> {
  const { output } = await run('bash', [
    '-c',
    `wrk -t1 -c${connections} -d${duration}s -s ${script} ${url}/order/buy && times`,
  ]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(output)?.[1]);
  // `times` prints the shell's user/system time, then its children's: 0m1.234s 0m0.456s.
  const clock = [...output.matchAll(/(\d+)m([\d.]+)s/g)].map(
    (m) => Number(m[1]) * 60 + Number(m[2]),
  );
  const cpu = (clock[2] ?? NaN) + (clock[3] ?? NaN);
  if (!(rps > 0)) throw new Error(`wrk failed: ${output}`);
  return {
    requestsPerSecond: Math.round(rps),
    cpuUsPerRequest: +((cpu * 1e6) / requests).toFixed(1),
  };
}

async function autocannonRun(url: string): Promise<ToolResult> {
  const before = process.cpuUsage();
  const result = await autocannon({
    url: `${url}/order/buy`,
    connections,
    duration,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
  });
  const cpu = process.cpuUsage(before);
  return {
    requestsPerSecond: Math.round(result.requests.average),
    cpuUsPerRequest: +((cpu.user + cpu.system) / Math.max(1, result.requests.total)).toFixed(1),
  };
}

interface FloodStep {
  rate: number;
  achieved: number;
  answeredPerSecond: number;
  sustained: boolean;
  limited: boolean;
  cpuUsPerRequest: number | null;
  sendLagP99: number | null;
  latencyP99: number | null;
}

async function flood(url: string, rate: number): Promise<FloodStep> {
  const { output } = await run(
    process.execPath,
    [
      `${root}bin/run.js`,
      'flood',
      '--url',
      url,
      '--product',
      'p1',
      '--rate',
      String(rate),
      '--duration',
      `${duration}s`,
      '--users',
      '100000',
      '--threads',
      String(threads),
      '--no-audit',
      '--json',
      '--quiet',
    ],
    { ...process.env, FSALE_JWT_SECRET: randomBytes(24).toString('hex') },
  );
  const summary = JSON.parse(output.slice(output.indexOf('{'))) as FloodSummary;
  return {
    rate,
    achieved: summary.rate.achieved,
    answeredPerSecond: summary.rate.answeredPerSecond,
    limited: summary.generator.limited,
    sustained: !summary.generator.limited && summary.rate.answeredPerSecond >= 0.95 * rate,
    cpuUsPerRequest: summary.generator.cpuUsPerRequest,
    sendLagP99: summary.generator.sendLagMs?.p99 ?? null,
    latencyP99: summary.latencyMs?.p99 ?? null,
  };
}

interface RoundResult {
  wrk: ToolResult | null;
  autocannon: ToolResult;
  flood: FloodStep[];
  /** Highest step flood sustained (0: none). */
  floodMaxSustained: number;
}

let server: ChildServer | undefined;
const dir = await mkdtemp(join(tmpdir(), 'fsale-bench-generator-'));
const results: RoundResult[] = [];
try {
  server = await startServer(
    process.execPath,
    ['--import', 'tsx', `${root}bench/servers/bare.ts`],
    process.env,
  );
  const script = join(dir, 'buy.lua');
  await writeFile(
    script,
    `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  log(`warming the server up: autocannon ${duration} s`);
  await autocannonRun(server.url);
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}: wrk${hasWrk ? '' : ' (not installed: apt install wrk)'}`);
    const wrkResult = hasWrk ? await wrk(server.url, script) : null;
    log(`round ${round}/${rounds}: autocannon`);
    const ac = await autocannonRun(server.url);
    // Flood's steps are fractions of the closed-loop ceiling this round measured.
    const ceiling = wrkResult?.requestsPerSecond ?? ac.requestsPerSecond;
    const floodSteps: FloodStep[] = [];
    for (const step of steps) {
      const rate = Math.round(step * ceiling);
      log(
        `round ${round}/${rounds}: flood --rate ${rate} (${step} x ${hasWrk ? 'wrk' : 'autocannon'})`,
      );
      const result = await flood(server.url, rate);
      floodSteps.push(result);
      if (!result.sustained) break;
    }
    results.push({
      wrk: wrkResult,
      autocannon: ac,
      flood: floodSteps,
      floodMaxSustained: Math.max(0, ...floodSteps.filter((s) => s.sustained).map((s) => s.rate)),
    });
  }
} finally {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
}

const range = (values: (number | null | undefined)[], digits = 0) => {
  const known = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (known.length === 0) return '-';
  const lo = Math.min(...known).toFixed(digits);
  const hi = Math.max(...known).toFixed(digits);
  return lo === hi ? lo : `${lo}–${hi}`;
};
/** Flood's figures at its highest sustained step (else its first step) of each round. */
const floodAt = (r: RoundResult) =>
  r.flood.find((s) => s.rate === r.floodMaxSustained) ?? r.flood[0];
const ratios = results.map((r) => ({
  floodRateToWrk:
    r.wrk === null ? null : +(r.floodMaxSustained / r.wrk.requestsPerSecond).toFixed(2),
  floodRateToAutocannon: +(r.floodMaxSustained / r.autocannon.requestsPerSecond).toFixed(2),
  floodCpuToWrk:
    r.wrk === null
      ? null
      : +((floodAt(r)?.cpuUsPerRequest ?? NaN) / r.wrk.cpuUsPerRequest).toFixed(2),
  floodCpuToAutocannon: +(
    (floodAt(r)?.cpuUsPerRequest ?? NaN) / r.autocannon.cpuUsPerRequest
  ).toFixed(2),
}));
const summary = {
  benchmark: 'generator',
  connections,
  threads,
  durationSeconds: duration,
  rounds: results,
  ratios,
};
if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  printTable(
    ['generator', 'model', 'req/s (flood: max sustained)', 'CPU µs/req', 'send lag p99 ms'],
    [
      [
        'wrk -t1',
        'closed',
        range(results.map((r) => r.wrk?.requestsPerSecond)),
        range(
          results.map((r) => r.wrk?.cpuUsPerRequest),
          1,
        ),
        '-',
      ],
      [
        'autocannon',
        'closed',
        range(results.map((r) => r.autocannon.requestsPerSecond)),
        range(
          results.map((r) => r.autocannon.cpuUsPerRequest),
          1,
        ),
        '-',
      ],
      [
        'fsale flood',
        'open',
        range(results.map((r) => r.floodMaxSustained)),
        range(
          results.map((r) => floodAt(r)?.cpuUsPerRequest),
          1,
        ),
        range(
          results.map((r) => floodAt(r)?.sendLagP99),
          1,
        ),
      ],
    ],
  );
  printTable(
    [
      'round',
      'flood step rate',
      'achieved',
      'answered/s',
      'sustained',
      'CPU µs/req',
      'send lag p99',
      'latency p99',
    ],
    results.flatMap((r, i) =>
      r.flood.map((s) => [
        i + 1,
        s.rate,
        s.achieved,
        s.answeredPerSecond,
        s.sustained ? 'yes' : s.limited ? 'no (limited)' : 'no',
        s.cpuUsPerRequest ?? '-',
        s.sendLagP99 ?? '-',
        s.latencyP99 ?? '-',
      ]),
    ),
  );
  for (const [i, r] of ratios.entries())
    console.log(
      `round ${i + 1}: flood max sustained / wrk = ${r.floodRateToWrk ?? 'n/a'} (target >= 0.9), / autocannon = ${r.floodRateToAutocannon}; ` +
        `flood CPU per request / wrk = ${r.floodCpuToWrk ?? 'n/a'}, / autocannon = ${r.floodCpuToAutocannon}`,
    );
}
