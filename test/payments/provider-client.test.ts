import { createServer, type Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaymentProvider } from '../../src/payments/provider-client.js';

describe('PaymentProvider', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // A provider that never answers a charge (the mock gateway's "hang").
    server = createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gives up on a charge that never answers, for every one of many concurrent charges, across garbage collections', async () => {
    const client = new PaymentProvider(url);
    const parent = new AbortController(); // a worker's shutdown signal, never fired here
    const charges = Array.from({ length: 100 }, (_, i) =>
      client.charge(`order-${i}`, 100, 300, parent.signal),
    );
    // Force full collections: a timeout held only weakly (Node 20's AbortSignal.any) is
    // collected and the charge then waits forever.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let i = 0; i < 10; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 30));
    }
    const outcomes = await Promise.race([
      Promise.all(charges),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 3_000)),
    ]);
    expect(outcomes).not.toBe('hung');
    if (outcomes === 'hung') return;
    expect(
      outcomes.every((o) => o.kind === 'unknown' && o.reason === 'no answer within 300 ms'),
    ).toBe(true);
  });

  it('stops a charge at once when its worker shuts down', async () => {
    const client = new PaymentProvider(url);
    const parent = new AbortController();
    const charge = client.charge('order-x', 100, 60_000, parent.signal);
    parent.abort();
    expect(await charge).toMatchObject({ kind: 'unknown', reason: 'aborted' });
  });
});
