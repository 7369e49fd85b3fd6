import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanKeys } from '../../src/redis/client.js';
import { idempotencyKey, ORDER_GROUP, productKeys, productsKey } from '../../src/redis/keys.js';
import { readLayout } from '../../src/redis/sale-state.js';
import { runCli } from '../helpers/cli.js';
import { useTestServices, type TestServices } from '../helpers/services.js';

/** Puts one order for `productId` everywhere a real sale would: PG row, stream, counts, idempotency. */
async function plantOrder(s: TestServices, productId: string, userId: string): Promise<void> {
  const keys = productKeys(s.keyPrefix, productId);
  const id = randomUUID();
  await s.pool.query(
    `INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
     VALUES ($1, $2, $3, 1, 'pending', $4, now())`,
    [id, productId, userId, `k-${userId}`],
  );
  await s.pool.query('UPDATE products SET remaining = remaining - 1 WHERE id = $1', [productId]);
  await s.redis
    .multi()
    .decr(keys.stock)
    .hincrby(keys.bought, userId, 1)
    .xadd(keys.orders, '*', 'id', id, 'user', userId, 'qty', '1')
    .set(idempotencyKey(keys, userId, `k-${userId}`), 'planted')
    .exec();
}

async function snapshot(s: TestServices, productId: string) {
  const keys = productKeys(s.keyPrefix, productId);
  const orders = await s.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM orders WHERE product_id = $1',
    [productId],
  );
  const product = await s.pool.query<{ remaining: number; stock_total: number }>(
    'SELECT remaining, stock_total FROM products WHERE id = $1',
    [productId],
  );
  return {
    pgOrders: orders.rows[0]?.n,
    pgRemaining: product.rows[0]?.remaining,
    stock: await s.redis.get(keys.stock),
    streamLength: await s.redis.xlen(keys.orders),
    buyers: await s.redis.hlen(keys.bought),
    idempotencyRecords: (await scanKeys(s.redis, `${keys.idempotencyPrefix}*`)).length,
    sale: await s.redis.hgetall(keys.sale),
  };
}

describe('fsale seed', () => {
  let a: TestServices;
  let b: TestServices;
  beforeAll(async () => {
    [a, b] = await Promise.all([useTestServices(), useTestServices()]);
  });
  const seed = (s: TestServices, ...args: string[]) => runCli(['seed', '--json', ...args], s.env);

  it('writes the product to PostgreSQL and the sale state to Redis', async () => {
    const result = await seed(
      a,
      '--product',
      'fresh',
      '--stock',
      '25',
      '--per-user-limit',
      '3',
      '--price-cents',
      '4999',
      '--starts-at',
      '2030-01-02T03:04:05Z',
    );
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      productId: 'fresh',
      stock: 25,
      perUserLimit: 3,
      reset: false,
    });
    const row = await a.pool.query('SELECT * FROM products WHERE id = $1', ['fresh']);
    expect(row.rows[0]).toMatchObject({
      stock_total: 25,
      remaining: 25,
      per_user_limit: 3,
      price_cents: 4999,
    });
    const state = await snapshot(a, 'fresh');
    expect(state.stock).toBe('25');
    expect(state.sale).toEqual({
      total: '25',
      limit: '3',
      starts: String(Date.parse('2030-01-02T03:04:05Z')),
    });
    expect(await a.redis.sismember(productsKey(a.keyPrefix), 'fresh')).toBe(1);
  });

  it('--reset clears one product under one prefix and nothing else', async () => {
    for (const s of [a, b]) {
      for (const product of ['p1', 'p2']) {
        expect((await seed(s, '--product', product, '--stock', '10')).code).toBe(0);
        await plantOrder(s, product, 'alice');
        await plantOrder(s, product, 'bob');
      }
    }
    const before = {
      aP2: await snapshot(a, 'p2'),
      bP1: await snapshot(b, 'p1'),
      bP2: await snapshot(b, 'p2'),
    };
    expect(before.bP1).toMatchObject({
      pgOrders: 2,
      stock: '8',
      streamLength: 2,
      buyers: 2,
      idempotencyRecords: 2,
    });

    const result = await seed(a, '--product', 'p1', '--stock', '10', '--reset');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ reset: true, deletedOrders: 2 });

    expect(await snapshot(a, 'p1')).toMatchObject({
      pgOrders: 0,
      pgRemaining: 10,
      stock: '10',
      streamLength: 0,
      buyers: 0,
      idempotencyRecords: 0,
    });
    expect(await snapshot(a, 'p2')).toEqual(before.aP2);
    expect(await snapshot(b, 'p1')).toEqual(before.bP1);
    expect(await snapshot(b, 'p2')).toEqual(before.bP2);
  });

  it('refuses to re-seed a product with orders without --reset, and changes nothing', async () => {
    const before = await snapshot(b, 'p1');
    const result = await seed(b, '--product', 'p1', '--stock', '99');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/already has orders.*--reset/);
    expect(await snapshot(b, 'p1')).toEqual(before);
  });

  it.each([
    [['--product', 'bad id', '--stock', '1'], /product id must be/],
    [['--product', 'p', '--stock', '-1'], /stock/],
    [
      ['--product', 'p', '--stock', '1', '--starts-at', 'tomorrow'],
      /--starts-at is not an ISO 8601 date/,
    ],
    [['--product', 'p', '--stock', '1', '--per-user-limit', '0'], /per-user-limit/],
  ])('rejects bad input %j with a clear error and writes nothing', async (args, message) => {
    const result = await seed(a, ...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    const rows = await a.pool.query("SELECT 1 FROM products WHERE id IN ('p', 'bad id')");
    expect(rows.rowCount).toBe(0);
  });

  it("names the order stream of every stock shard, each with the order workers' group", async () => {
    const one = await seed(a, '--product', 'streams1', '--stock', '10');
    expect(JSON.parse(one.stdout)).toMatchObject({
      orderStreams: [productKeys(a.keyPrefix, 'streams1').orders],
    });
    const result = await seed(a, '--product', 'streams3', '--stock', '30', '--stock-shards', '3');
    expect(result.code, result.stderr).toBe(0);
    const { orderStreams } = JSON.parse(result.stdout) as { orderStreams: string[] };
    const layout = await readLayout(a.redis, a.keyPrefix, 'streams3');
    expect(orderStreams).toEqual(layout.shards.map((keys) => keys.orders));
    expect(new Set(orderStreams).size).toBe(3);
    for (const stream of orderStreams) {
      const groups = (await a.redis.xinfo('GROUPS', stream)) as unknown[][];
      expect(
        groups.map((g) => g[1]),
        stream,
      ).toEqual([ORDER_GROUP]);
    }
    // Said on the human line too: the operator lists them in the autoscaler.
    const human = await runCli(
      ['seed', '--product', 'streams3', '--stock', '30', '--stock-shards', '3', '--reset'],
      a.env,
    );
    for (const stream of orderStreams) expect(human.stdout).toContain(stream);
  });
});
