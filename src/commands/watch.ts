import { Flags } from '@oclif/core';
import { FsaleCommand } from '../cli/base.js';
import { outputStyle } from '../cli/colors.js';
import { durationFlag } from '../cli/duration-flag.js';
import { loadConfig } from '../config.js';
import { UsageError } from '../domain/errors.js';
import { ProductNotFoundError, watchProduct } from '../watch/session.js';
import { renderLine, renderPanel, toJsonLine, type WatchSnapshot } from '../watch/view.js';

export default class Watch extends FsaleCommand {
  static override summary =
    'Watch a sale live: stock over time, accepted/s, released/s, confirmed/s, sold-out time.';
  static override description = `Follows GET /stock/:id/stream (SSE) and polls GET /products/:id for order counts. Each stock event carries the new level and the units the server process has counted accepted and released (from the buys' and releases' own events), so accepted/s and released/s are shown apart and exact, even when a buy and a release fall in one coalesced event; units coming back clear "sold out". Against a server that sends the level alone, a fall is read as accepts and a rise as releases.

On a terminal (without NO_COLOR) the view redraws in place with a sparkline of the stock over the last 30 snapshots in unicode blocks; otherwise (a pipe, a log, NO_COLOR) it prints one plain ASCII line per interval, or one JSON object per line with --json. When the stream drops, it says so and reconnects with Last-Event-ID. Ctrl-C exits 0; --until-sold-out exits 0 at stock 0.`;
  static override examples = [
    '<%= config.bin %> watch --product p1',
    '<%= config.bin %> watch --product p1 --url http://127.0.0.1:8080 --until-sold-out',
    '<%= config.bin %> watch --product p1 --json | jq .remaining',
  ];
  static override flags = {
    product: Flags.string({ description: 'product id', required: true }),
    url: Flags.string({ description: 'API base URL [default: http://127.0.0.1:$PORT]' }),
    json: Flags.boolean({ description: 'print one JSON object per interval' }),
    interval: durationFlag({ description: 'refresh interval', default: 1000, min: 100 }),
    'until-sold-out': Flags.boolean({ description: 'exit 0 once the stock reaches 0' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Watch);
    const url = flags.url ?? `http://127.0.0.1:${loadConfig().port}`;
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--url must be an http(s) URL, got ${url}`);
    const tty = outputStyle().rich && !flags.json;
    let drawn = 0;
    const show = (snapshot: WatchSnapshot) => {
      if (flags.json) return void process.stdout.write(toJsonLine(snapshot) + '\n');
      if (!tty) return void process.stdout.write(renderLine(snapshot) + '\n');
      const lines = renderPanel(snapshot);
      // Move up over the previous panel and overwrite it line by line.
      process.stdout.write(
        (drawn > 0 ? `\x1b[${drawn}F` : '') + lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n',
      );
      drawn = lines.length;
    };
    const notice = (message: string) => {
      if (flags.json)
        process.stdout.write(
          JSON.stringify({ at: new Date().toISOString(), notice: message }) + '\n',
        );
      else process.stderr.write(`fsale watch: ${message}\n`);
      drawn = 0;
    };

    let stop: () => void = () => undefined;
    let last: WatchSnapshot | undefined;
    await new Promise<void>((resolve, reject) => {
      const finish = () => {
        stop();
        if (last !== undefined && !flags.json && tty) show(last);
        resolve();
      };
      process.once('SIGINT', finish);
      process.once('SIGTERM', finish);
      watchProduct({
        url,
        productId: flags.product,
        intervalMs: flags.interval,
        onSnapshot: (snapshot) => {
          last = snapshot;
          show(snapshot);
          if (flags['until-sold-out'] && snapshot.remaining === 0) finish();
        },
        onNotice: notice,
      }).then(
        (stopWatching) => (stop = stopWatching),
        (error: unknown) =>
          reject(
            error instanceof ProductNotFoundError
              ? new UsageError(error.message)
              : new UsageError(
                  `cannot watch ${url}: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}`,
                ),
          ),
      );
    });
  }
}
