import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Flags } from '@oclif/core';
import { FsaleCommand, jwtSecretFlag, serviceFlags } from '../cli/base.js';
import { linePrefixer } from '../cli/colors.js';
import { connectPostgres } from '../db/pool.js';
import { connectRedis } from '../redis/client.js';
import { seedProduct } from '../sale/seed.js';
import { startStack } from '../stack/stack.js';
import type { FloodSummary } from '../load/summary.js';
import { renderDemoSummary } from '../load/demo-summary.js';
import { stackFlags } from './up.js';

const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export default class Demo extends FsaleCommand {
  static override summary = 'Run a whole flash sale on this machine and explain what happened.';
  static override description = `\`up\` + \`seed\` + \`flood\` (with follow-through to payment) + \`audit\`, then a summary a
newcomer can read: how many tried, how many got one, time to sell out, ack latency,
time to confirm, declines released, and whether every invariant held. Uses REDIS_URL /
DATABASE_URL when they answer, else private servers under --data-dir. Exits 1 if any
invariant fails. --html writes the flood report.`;
  static override examples = [
    '<%= config.bin %> demo',
    '<%= config.bin %> demo --stock 500 --users 10000 --rate 2000 --html report.html',
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
      description: 'arrivals per second (open model)',
      default: 2_000,
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
    const prefix = linePrefixer(process.stdout.isTTY);
    const say = (message: string) => {
      if (!this.jsonEnabled()) process.stderr.write(prefix('demo', message) + '\n');
    };
    const started = Date.now();
    say('starting the stack (API, order and payment workers, mock gateway, reconcile)');
    const stack = await startStack({
      redisUrl: config.redisUrl,
      databaseUrl: config.databaseUrl,
      keyPrefix: config.keyPrefix,
      jwtSecret: config.jwtSecret,
      dataDir: flags['data-dir'],
      port: flags.port,
      gatewayPort: flags['gateway-port'],
      gatewaySpeed: flags['gateway-speed'],
      apiWorkers: flags['api-workers'],
      orderWorkers: flags['order-workers'],
      paymentWorkers: flags['payment-workers'],
      demoAuth: true,
      onLine: (name, line) => {
        if (flags.verbose) process.stderr.write(prefix(name, line) + '\n');
      },
      onNotice: say,
    });
    try {
      const env = stack.env;
      const pool = await connectPostgres(env.DATABASE_URL ?? '', { max: 2 });
      const redis = await connectRedis(env.REDIS_URL ?? '');
      try {
        await seedProduct(
          { pool, redis, keyPrefix: config.keyPrefix },
          {
            productId: flags.product,
            stock: flags.stock,
            name: 'Limited edition sneaker',
            priceCents: 12_900,
            reset: true,
          },
        );
      } finally {
        redis.disconnect();
        await pool.end();
      }
      const seconds = Math.max(1, Math.ceil(flags.users / flags.rate));
      say(
        `selling ${flags.stock} units to ${flags.users} buyers arriving at ${flags.rate}/s (${seconds} s); storefront: ${stack.apiUrl}/?product=${flags.product}&user=you`,
      );
      const args = [
        RUN_JS,
        'flood',
        '--json',
        '--quiet',
        '--url',
        stack.apiUrl,
        '--product',
        flags.product,
        '--users',
        String(flags.users),
        '--rate',
        String(flags.rate),
        '--requests',
        String(flags.users),
        '--follow',
        '--follow-timeout',
        '60s',
      ];
      if (flags.html !== undefined) args.push('--html', flags.html);
      const summary = await new Promise<FloodSummary>((resolve, reject) => {
        const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
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
      if (!this.jsonEnabled()) {
        this.log(
          renderDemoSummary(summary, {
            stock: flags.stock,
            wallSeconds: (Date.now() - started) / 1000,
          }),
        );
        if (flags.html !== undefined) this.log(`report: ${flags.html}`);
      }
      if (summary.audit?.ok !== true || summary.idempotency.secondReservations > 0)
        process.exitCode = 1;
      return summary;
    } finally {
      say('stopping the stack');
      await stack.stop();
    }
  }
}
