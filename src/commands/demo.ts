import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Flags } from '@oclif/core';
import { FsaleCommand, jwtSecretFlag, serviceFlags } from '../cli/base.js';
import { linePrefixer, outputStyle } from '../cli/colors.js';
import { readableLine } from '../cli/log.js';
import { stackFlags, stackSettings } from '../cli/stack-flags.js';
import { withStores } from '../stores.js';
import { seedProduct } from '../sale/seed.js';
import { startStack, stopOnSignal } from '../stack/stack.js';
import { EXIT, type FloodSummary } from '../load/summary.js';
import { renderDemoSummary, renderNextSteps, type DemoNextSteps } from '../load/demo-summary.js';
import { calibrate, CALIBRATION } from '../load/calibrate.js';

const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url));
const CALIBRATION_PRODUCT = 'demo-calibration';
/** nice(1) level of the demo's stack: at 5 the kernel gives this process 3x its CPU share. */
const DEMO_STACK_NICENESS = 5;
/** The product on sale, as seeded here and in the re-seed the demo suggests at its end. */
const DEMO_PRODUCT = { name: 'Limited edition sneaker', priceCents: 12_900 };

/** Runs `fsale flood --json --quiet ARGS` in its own process (its own cores' worth of event loop). */
function runFloodChild(args: string[], env: NodeJS.ProcessEnv): Promise<FloodSummary> {
  return new Promise<FloodSummary>((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, 'flood', '--json', '--quiet', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as FloodSummary);
      } catch {
        reject(new Error(`flood exited with ${code} without a summary: ${out.slice(0, 500)}`));
      }
    });
  });
}

export default class Demo extends FsaleCommand {
  static override summary = 'Run a whole flash sale on this machine and explain what happened.';
  static override description = `\`up\` + \`seed\` + \`flood\` (with follow-through to payment) + \`audit\`, then a summary a newcomer can read: how many tried, how many got one, time to sell out, ack latency, time to confirm, declines released, and whether every invariant held. Uses REDIS_URL / DATABASE_URL when they answer, else private servers under --data-dir. Without --rate it first calibrates: a 6 s ramp against a sold-out product measures what this machine's generator can send next to the stack, and the sale runs at a third of that (35 %, at most 1,000/s), with the stack at nice 5 below the generator, so the figures are the server's. Exits 1 if any invariant fails, 4 if the generator still fell behind (inconclusive). --html writes the flood report.`;
  static override examples = [
    '<%= config.bin %> demo',
    '<%= config.bin %> demo --stock 500 --users 10000 --rate 2000 --html report.html',
    '<%= config.bin %> demo --users 50000   # the rate is calibrated to this machine first',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...jwtSecretFlag,
    ...stackFlags,
    'gateway-speed': Flags.integer({
      description: 'divide the mock gateway latencies',
      default: 20,
      min: 1,
    }),
    'gateway-port': Flags.integer({
      description: 'mock gateway port (0 picks a free one)',
      default: 0,
      min: 0,
      max: 65535,
    }),
    port: Flags.integer({
      description: 'API port (0 picks a free one)',
      default: 0,
      min: 0,
      max: 65535,
    }),
    stock: Flags.integer({ description: 'units for sale', default: 1000, min: 1 }),
    users: Flags.integer({
      description: 'distinct buyers, one attempt each',
      default: 20_000,
      min: 1,
    }),
    rate: Flags.integer({
      description:
        "arrivals per second (open model) [default: calibrated: 35 % of what this machine's generator sustains next to the stack, measured first]",
      min: 1,
    }),
    product: Flags.string({
      description: 'product id used for the demo (reset first)',
      default: 'demo',
    }),
    html: Flags.string({ description: 'write the flood report (self-contained HTML) here' }),
    verbose: Flags.boolean({ description: "show every process's log lines" }),
  };

  async run(): Promise<FloodSummary> {
    const { flags } = await this.parse(Demo);
    const config = this.settings(flags);
    // Everything this command writes itself (progress, the children's lines) goes to stderr.
    const style = outputStyle(process.stderr);
    const prefix = linePrefixer(style);
    const say = (message: string) => {
      if (!this.jsonEnabled()) process.stderr.write(prefix('demo', message) + '\n');
    };
    const started = Date.now();
    say('starting the stack (API, order and payment workers, mock gateway, reconcile)');
    const stopped = stopOnSignal();
    const stack = await startStack({
      ...stackSettings(config, flags),
      port: flags.port,
      demoAuth: true,
      // The generator (the flood child, at this process's level) first when the cores are
      // contended: see StackOptions.
      niceness: DEMO_STACK_NICENESS,
      signal: stopped,
      onLine: (name, line) => {
        if (flags.verbose) process.stderr.write(prefix(name, readableLine(line, style)) + '\n');
      },
      onNotice: say,
    });
    // Stopped mid-sale: the stack goes first (the flood child then fails to reach it and exits).
    stopped.addEventListener('abort', () => {
      say('stopping the stack');
      void stack.stop().then(() => process.exit(130));
    });
    try {
      const env = stack.env;
      const connection = {
        databaseUrl: env.DATABASE_URL ?? '',
        redisUrl: env.REDIS_URL ?? '',
        keyPrefix: config.keyPrefix,
        poolMax: 2,
      };
      await withStores(connection, async (ctx) => {
        await seedProduct(ctx, {
          productId: flags.product,
          stock: flags.stock,
          ...DEMO_PRODUCT,
          reset: true,
        });
        // Sold out from the start: the calibration gets the API's cheapest answer, and buys
        // nothing of the sale's own product.
        if (flags.rate === undefined)
          await seedProduct(ctx, {
            productId: CALIBRATION_PRODUCT,
            stock: 0,
            name: 'Calibration (sold out)',
            priceCents: 100,
            reset: true,
          });
      });
      let rate = flags.rate;
      if (rate === undefined) {
        say(
          `calibrating: how fast can this machine's generator send next to the stack? (${CALIBRATION.seconds} s ramp to ${CALIBRATION.maxRate}/s against a sold-out product)`,
        );
        const probe = await runFloodChild(
          [
            '--url',
            stack.apiUrl,
            '--product',
            CALIBRATION_PRODUCT,
            '--stages',
            `${CALIBRATION.seconds}s:${CALIBRATION.maxRate}`,
            '--users',
            '200000',
            '--no-audit',
            // Falling behind is what it looks for, not a reason to stop.
            '--max-send-lag',
            '1m',
          ],
          env,
        );
        const calibration = calibrate(probe.timeline, CALIBRATION);
        rate = calibration.rate;
        say(
          `calibrated: the generator kept its schedule up to ${calibration.sustainedRate}/s (send lag and p99 within ${CALIBRATION.boundMs} ms); the sale runs at ${rate}/s (${CALIBRATION.share * 100} %, bounded ${CALIBRATION.minRate}-${CALIBRATION.maxDemoRate}), so its figures are the server's. --rate overrides`,
        );
      }
      const seconds = Math.max(1, Math.ceil(flags.users / rate));
      say(
        `selling ${flags.stock} units to ${flags.users} buyers arriving at ${rate}/s (${seconds} s); storefront: ${stack.apiUrl}/?product=${flags.product}&user=you`,
      );
      const args = [
        '--url',
        stack.apiUrl,
        '--product',
        flags.product,
        '--users',
        String(flags.users),
        '--rate',
        String(rate),
        '--requests',
        String(flags.users),
        '--follow',
        '--follow-timeout',
        '1m',
      ];
      if (flags.html !== undefined) args.push('--html', flags.html);
      const summary = await runFloodChild(args, env);
      if (!this.jsonEnabled()) {
        this.log(
          renderDemoSummary(summary, {
            stock: flags.stock,
            wallSeconds: (Date.now() - started) / 1000,
          }),
        );
        if (flags.html !== undefined) this.log(`report: ${flags.html}`);
        this.log(
          renderNextSteps(
            nextSteps(flags, {
              // `up` listens on --port (PORT, else 3000) where the demo took a free one.
              port: flags.port === 0 ? this.settings({}).port : flags.port,
              privateServices:
                env.REDIS_URL !== config.redisUrl || env.DATABASE_URL !== config.databaseUrl,
            }),
          ),
        );
      }
      if (summary.audit?.ok !== true || summary.idempotency.secondReservations > 0)
        process.exitCode = 1;
      else if (summary.generator.limited) process.exitCode = EXIT.inconclusive;
      return summary;
    } finally {
      say('stopping the stack');
      await stack.stop();
    }
  }
}

/** The steps after the demo, for the stack the demo's flags describe. */
function nextSteps(
  flags: {
    product: string;
    stock: number;
    html?: string | undefined;
    'data-dir': string;
    'redis-cluster': boolean;
    'redis-url'?: string | undefined;
    'database-url'?: string | undefined;
    'key-prefix'?: string | undefined;
  },
  stack: { port: number; privateServices: boolean },
): DemoNextSteps {
  // The services as the demo was told them (the environment reaches both commands anyway).
  const services = (['redis-url', 'database-url', 'key-prefix'] as const).flatMap((flag) => {
    const value = flags[flag];
    return value === undefined ? [] : [`--${flag}`, value];
  });
  const dataDir = stackFlags['data-dir'].default;
  return {
    product: flags.product,
    seedArgs: [
      '--product',
      flags.product,
      '--stock',
      String(flags.stock),
      '--name',
      DEMO_PRODUCT.name,
      '--price-cents',
      String(DEMO_PRODUCT.priceCents),
      '--reset',
      ...(stack.privateServices ? [] : services),
    ],
    upArgs: [
      '--port',
      String(stack.port),
      ...(flags['data-dir'] === dataDir ? [] : ['--data-dir', flags['data-dir']]),
      ...(flags['redis-cluster'] ? ['--redis-cluster'] : []),
      ...services,
    ],
    port: stack.port,
    privateServices: stack.privateServices,
    html: flags.html === undefined ? undefined : resolve(flags.html),
  };
}
