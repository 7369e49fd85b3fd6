// A payment provider on a free port whose answers a test writes, and the order it charges.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { TestServices } from './services.js';

export interface ProviderAnswer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface FakeProvider {
  url: string;
  /** When each charge request arrived (ms since epoch), in order. */
  arrivals: number[];
  server: Server;
}

/** Answers the n-th charge request (1-based) with `answer(n)`. */
export async function startFakeProvider(
  answer: (arrival: number) => ProviderAnswer,
): Promise<FakeProvider> {
  const arrivals: number[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      arrivals.push(Date.now());
      const { status, headers, body } = answer(arrivals.length);
      response.writeHead(status, headers);
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${address.port}`, arrivals, server };
}

/** A persisted order waiting for its charge (what the order worker leaves), as the only job. */
export async function insertPendingOrder(s: TestServices, productId: string): Promise<string> {
  const orderId = randomUUID();
  await s.pool.query(
    `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
     VALUES ($1, $2, 'u1', 1, 'pending', 'k1', now())`,
    [orderId, productId],
  );
  return orderId;
}
