import { writeFile } from 'node:fs/promises';
import { FsaleCommand } from '../cli/base.js';
import { outputStyle } from '../cli/colors.js';
import { floodFlags } from '../cli/flood-flags.js';
import { floodOptions } from '../cli/flood-options.js';
import { runAudit } from '../audit/audit.js';
import { fetchLedger } from '../audit/ledger.js';
import { requireJwtSecret } from '../config.js';
import { connectPostgres, type Pool } from '../db/pool.js';
import { connectRedis, type Redis } from '../redis/client.js';
import { defaultThreads } from '../load/flood-thread.js';
import { runFlood } from '../load/flood.js';
import { renderHtmlReport } from '../load/report-html.js';
import { renderProgress, renderSummary } from '../load/report-text.js';
import type { FloodSummary } from '../load/summary.js';

export default class Flood extends FsaleCommand {
  static override summary = 'Flood a sale with buyers and report latency, outcomes and invariants.';
  static override description = `Drives POST /order/buy on a running API with distinct users (tokens signed locally with FSALE_JWT_SECRET) and a fresh Idempotency-Key per purchase.

Open model (--rate): arrivals at fixed intended times, with --ramp and --spike; latency is measured from each intended send time, so a stalled server shows up in the percentiles (no coordinated omission). Closed model (--connections): autocannon's engine, N connections each sending the next buy when the previous one is answered.

Latency is kept in one HDR histogram per outcome (202, 409 sold_out, 409 other, 429, 503, other 4xx, 5xx, network error). --retry-ratio and --double-click re-send purchases with the same key: the report counts replays and any second reservation (must be 0). --follow tracks every accepted order to paid / payment_failed (SSE, with polling beyond --follow-streams). At the end the audit runs (--no-audit skips it) and --threshold gates are checked.

All cores: --threads N splits the open model's schedule by user between N worker threads that start on one instant; their histograms, counts and timelines merge into one summary. The default is one thread per core but one (left to a server on the same machine), at most 4, at least 1: ${defaultThreads()} on this machine.

Many machines: run \`flood --part K/N --start-at <ISO time> --json > partK.json\` on each of N machines (same shape flags, same --seed or --start-at): part K sends the arrivals of the users u with u mod N = K-1, so no two parts share a buyer, from the same instant. Then \`fsale report merge part*.json\` merges them into one summary and one verdict.

Exit codes: 0 pass, 1 an invariant is violated (audit failed or a key reserved twice), 2 bad input or a service cannot be reached, 3 a threshold was missed, 4 inconclusive: the generator could not keep to its schedule, so its figures include its own delay (never a pass).

Thresholds: METRIC OP NUMBER[UNIT], e.g. 'p99<50ms' (every answered request), 'p99:accepted<=20ms', 'errors=0', 'error_rate<1%', 'orders=1000', 'second_reservations=0', 'rate>=900', 'confirm_p99<5s'. See README "fsale flood" for every metric.`;
  static override examples = [
    '<%= config.bin %> flood --product p1 --rate 2000 --duration 30s --users 50000',
    '<%= config.bin %> flood --product p1 --rate 20000 --duration 30s --users 500000 --threads 4',
    '<%= config.bin %> flood --product p1 --rate 60000 --duration 30s --users 1000000 --part 2/3 --start-at 2026-12-01T12:00:00Z --json > part2.json',
    '<%= config.bin %> flood --product p1 --rate 500 --ramp 10s --spike 5x@15s:3s --duration 30s --follow --html report.html',
    "<%= config.bin %> flood --product p1 --connections 64 --requests 20000 --threshold 'p99<50ms' --threshold 'errors=0'",
    '<%= config.bin %> flood --product p1 --rate 1000 --duration 10s --retry-ratio 0.1 --double-click --json > run.json',
  ];
  static override enableJsonFlag = true;
  static override flags = floodFlags;

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
      // Progress redraws one line in place on a terminal; elsewhere it is one line per second.
      const tty = outputStyle(process.stderr).rich;
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
        this.log(renderSummary(summary, outputStyle()));
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
