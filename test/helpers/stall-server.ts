// A tiny stand-in for the buy API, for tests of the load engine itself: every POST gets a 202
// with a fresh order id (or another answer chosen by `answer`), and once, `stallAfterMs` after
// the first buy, it stops answering for `stallMs`: everything in flight or arriving meanwhile
// is held and answered when the stall ends (a GC pause, a failover, a full disk).
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface StallServer {
  url: string;
  server: Server;
  buys: () => number;
  stalledAt: () => number | undefined;
  close: () => Promise<void>;
}

export interface StallOptions {
  stallAfterMs: number;
  stallMs: number;
  /** Status and body of buy n (1-based); default: 202 with a new order id. */
  answer?: (n: number) => { status: number; body: string };
  /** What GET /products/:id says is left (default: nothing, as an API without the field). */
  remaining?: number;
}

export const problem = (type: string, status: number) => ({
  status,
  body: JSON.stringify({ type: `urn:fsale:problem:${type}`, title: type, status }),
});

/** The 202 of buy n, with an order id of its own that is the same in every run. */
export const accepted = (n: number) => ({
  status: 202,
  body: JSON.stringify({
    orderId: `0190a0b0-0000-7000-8000-${String(n).padStart(12, '0')}`,
    status: 'queued',
    statusUrl: `/order/${n}`,
  }),
});

export async function startStallServer(options: StallOptions): Promise<StallServer> {
  let buys = 0;
  let firstBuyAt: number | undefined;
  let stallStart: number | undefined;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'POST') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(
            options.remaining === undefined
              ? '{}'
              : JSON.stringify({ remaining: options.remaining }),
          );
        return;
      }
      buys += 1;
      const now = performance.now();
      firstBuyAt ??= now;
      if (stallStart === undefined && now - firstBuyAt >= options.stallAfterMs) stallStart = now;
      const { status, body } = options.answer?.(buys) ?? {
        status: 202,
        body: JSON.stringify({ orderId: randomUUID(), status: 'queued', statusUrl: '/order/x' }),
      };
      const send = () =>
        res
          .writeHead(status, {
            'content-type': status === 202 ? 'application/json' : 'application/problem+json',
          })
          .end(body);
      const stallEnd = stallStart === undefined ? 0 : stallStart + options.stallMs;
      if (now < stallEnd) setTimeout(send, stallEnd - now);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    server,
    buys: () => buys,
    stalledAt: () => stallStart,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
