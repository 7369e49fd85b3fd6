// The buy path's client on a real local Redis Cluster (3 masters + 3 replicas): routing by
// slot, the buy script in one round trip to the product's slot, ASK and MOVED while a slot
// moves between masters, and a failover of the product's master mid-sale.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceOutage } from '../../src/domain/errors.js';
import { startRedisCluster, type LocalCluster } from '../../src/infra/local-cluster.js';
import { productKeys } from '../../src/redis/keys.js';
import { RespCluster } from '../../src/redis/resp-cluster.js';
import { luaScript } from '../../src/redis/resp.js';
import { mayHaveRun } from '../../src/domain/errors.js';
import { keySlot } from '../../src/redis/slots.js';
import { parseRedisTarget } from '../../src/redis/target.js';
import { BuyCode, reserveStock } from '../../src/sale/buy.js';
import { newOrderId } from '../../src/domain/order-id.js';
import { until } from '../helpers/wait.js';

let dataDir: string;
let cluster: LocalCluster;
let client: RespCluster;
const PREFIX = 'rc';

function seeds(): string[] {
  const target = parseRedisTarget(cluster.url);
  if (target.kind !== 'cluster') throw new Error('expected a cluster URL');
  return target.nodes;
}

async function nodeClient(port: number): Promise<Redis> {
  const node = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
  node.on('error', () => undefined);
  await node.connect();
  return node;
}

async function nodeId(port: number): Promise<string> {
  const node = await nodeClient(port);
  try {
    return String(await node.call('CLUSTER', 'MYID'));
  } finally {
    node.disconnect();
  }
}

/** A sale's Redis state, written on the product's master (no cross-slot MULTI on a cluster). */
async function seedOnCluster(productId: string, stock: number): Promise<void> {
  const keys = productKeys(PREFIX, productId);
  await client.call(['SET', keys.stock, stock]);
  await client.call(['HSET', keys.sale, 'total', stock, 'limit', 1, 'starts', 0]);
}

function buyer(productId: string, userId: string) {
  return {
    productId,
    userId,
    qty: 1,
    idempotencyKey: `key-${userId}`,
    orderId: newOrderId(),
  };
}

/**
 * Starts moving `slot` from its master to another one (IMPORTING, MIGRATING): `moveKeys` moves
 * some or all of its keys, `finish` gives the slot to the destination on every master.
 */
async function startMigration(slot: number) {
  const from = await cluster.masterOf(slot);
  const masters = new Set<number>();
  for (let s = 0; s < 16384; s += 5000) masters.add((await cluster.masterOf(s)).port);
  const to = [...masters].find((port) => port !== from.port) ?? 0;
  const [fromId, toId] = await Promise.all([nodeId(from.port), nodeId(to)]);
  const source = await nodeClient(from.port);
  const destination = await nodeClient(to);
  await destination.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
  await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
  return {
    slot,
    to,
    destination,
    /** Moves `keys`, or every key left in the slot on the source. */
    async moveKeys(keys?: string[]) {
      const moving =
        keys ?? ((await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as string[]);
      if (moving.length === 0) return;
      await source.call('MIGRATE', '127.0.0.1', to, '', 0, 5000, 'KEYS', ...moving);
    },
    async finish() {
      for (const port of masters) {
        const node = await nodeClient(port);
        try {
          await node.call('CLUSTER', 'SETSLOT', slot, 'NODE', toId);
        } finally {
          node.disconnect();
        }
      }
    },
    close() {
      source.disconnect();
      destination.disconnect();
    },
  };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'fsale-resp-cluster-'));
  cluster = await startRedisCluster({ dataDir, nodeTimeoutMs: 1_000 });
  client = await RespCluster.connect(seeds(), { name: 'fsale-test-buy' });
});

afterAll(async () => {
  await client.quit();
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('RespCluster, the buy path client on a Redis Cluster', () => {
  it('sends every command to the master of its key', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `${PREFIX}:{p:route${i}}:stock`);
    await Promise.all(keys.map((key, i) => client.call(['SET', key, i])));
    expect(await Promise.all(keys.map((key) => client.call(['GET', key])))).toEqual(
      keys.map((_, i) => String(i)),
    );
    // Each key is on the node CLUSTER SLOTS names for its slot, and on no other master.
    const spread = new Set<number>();
    for (const key of keys) {
      const owner = await cluster.masterOf(keySlot(key));
      spread.add(owner.port);
      const node = await nodeClient(owner.port);
      try {
        expect(await node.get(key)).not.toBeNull();
      } finally {
        node.disconnect();
      }
    }
    expect(spread.size).toBe(3);
  });

  it('runs the buy script in one round trip on the product slot: accept, sold out, replay', async () => {
    await seedOnCluster('hot', 2);
    const results = await Promise.all(
      ['a', 'b', 'c'].map((user) => reserveStock(client, PREFIX, buyer('hot', user))),
    );
    expect(results.map((r) => r.code).sort()).toEqual(
      [BuyCode.Accepted, BuyCode.Accepted, BuyCode.SoldOut].sort(),
    );
    const again = await reserveStock(client, PREFIX, buyer('hot', 'a'));
    expect(again.replayed || again.code === BuyCode.SoldOut).toBe(true);
    expect(await client.call(['GET', productKeys(PREFIX, 'hot').stock])).toBe('0');
  });

  it('follows ASK while the product slot migrates and MOVED once it has moved', async () => {
    const productId = 'moving';
    await seedOnCluster(productId, 100);
    const keys = productKeys(PREFIX, productId);
    const migration = await startMigration(keySlot(keys.stock));
    try {
      // Mid-migration: the stock key moves first; the sale hash is still on the source.
      await migration.moveKeys([keys.stock]);
      expect(await client.call(['GET', keys.stock])).toBe('100'); // via ASK
      await migration.moveKeys();
      await migration.finish();
      // The client's map still says the source: MOVED sends it to the new master.
      const bought = await reserveStock(client, PREFIX, buyer(productId, 'mover'));
      expect(bought.code).toBe(BuyCode.Accepted);
      expect(await migration.destination.get(keys.stock)).toBe('99');
      expect(client.masterOf(migration.slot)).toBe(`127.0.0.1:${migration.to}`);
    } finally {
      migration.close();
    }
  });

  it('a buy retried mid-migration on a node that never ran the buy script: ASKING goes before the EVAL fallback too, and a new buyer gets TRYAGAIN (an outage, 503)', async () => {
    const productId = 'moving-noscript';
    await seedOnCluster(productId, 10);
    const keys = productKeys(PREFIX, productId);
    // A window longer than the test: the buyer's rate counter exists, so do all 7 keys of its
    // replay, and the importing node serves it (a key missing there would answer TRYAGAIN).
    const policy = { rateLimit: 20, rateWindowMs: 600_000 };
    const early = buyer(productId, 'early');
    const first = await reserveStock(client, PREFIX, early, policy);
    expect(first.code).toBe(BuyCode.Accepted);
    const migration = await startMigration(keySlot(keys.stock));
    try {
      await migration.moveKeys();
      await migration.destination.call('SCRIPT', 'FLUSH');
      // The source answers ASK, the destination NOSCRIPT to the EVALSHA, then runs the EVAL.
      const replay = await reserveStock(client, PREFIX, early, policy);
      expect(replay).toMatchObject({
        code: BuyCode.Accepted,
        replayed: true,
        orderId: first.orderId,
      });
      const late = buyer(productId, 'late');
      const refused = await reserveStock(client, PREFIX, late, policy).catch((e: unknown) => e);
      expect(String(refused)).toMatch(/^ReplyError: TRYAGAIN/);
      expect(isServiceOutage(refused)).toBe(true);
      expect(mayHaveRun(refused)).toBe(false);
      await migration.finish();
      expect((await reserveStock(client, PREFIX, late, policy)).code).toBe(BuyCode.Accepted);
      expect(await migration.destination.get(keys.stock)).toBe('8');
    } finally {
      migration.close();
    }
  });

  it('with durability, a script counts only once a replica has it: a stopped replica makes it NOREPLICAS, mayHaveRun', async () => {
    const productId = 'durable';
    await seedOnCluster(productId, 10);
    const keys = productKeys(PREFIX, productId);
    const durability = { replicas: 1, timeoutMs: 500 };
    const script = luaScript("return redis.call('DECR', KEYS[1])", 1);
    expect(await client.evalScript(script, [keys.stock], durability)).toBe(9);

    const master = await cluster.masterOf(keySlot(keys.stock));
    const primary = await nodeClient(master.port);
    const replicaPort = Number(
      /slave0:ip=[^,]+,port=(\d+)/.exec(await primary.info('replication'))?.[1],
    );
    primary.disconnect();
    const replica = cluster.nodes.find((n) => n.port === replicaPort);
    if (replica === undefined) throw new Error('no replica found');
    process.kill(replica.pid, 'SIGSTOP');
    let failure: unknown;
    try {
      failure = await client.evalScript(script, [keys.stock], durability).catch((e: unknown) => e);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
    expect(String(failure)).toMatch(/NOREPLICAS 0 of 1/);
    expect(isServiceOutage(failure)).toBe(true);
    expect(mayHaveRun(failure)).toBe(true);
    // It did run on the master: the unit is taken, only its safety is unproven.
    expect(await client.call(['GET', keys.stock])).toBe('8');
  });

  it('a failover of the product master: buys fail as outages until the replica is promoted, then go on by themselves', async () => {
    const productId = 'failover';
    await seedOnCluster(productId, 1000);
    const slot = keySlot(productKeys(PREFIX, productId).stock);
    const master = await cluster.masterOf(slot);
    // Replication is asynchronous: the replica must have the sale before its master dies
    // (what it may lack otherwise is what `--durability replica` is for).
    const primary = await nodeClient(master.port);
    try {
      await until('the replica to have caught up', async () => {
        const info = await primary.info('replication');
        const offset = /master_repl_offset:(\d+)/.exec(info)?.[1];
        const replica = /slave0:.*offset=(\d+)/.exec(info)?.[1];
        return offset !== undefined && offset === replica;
      });
    } finally {
      primary.disconnect();
    }
    process.kill(master.pid, 'SIGKILL');
    let outages = 0;
    let accepted = 0;
    await until(
      'a buy to be accepted by the promoted replica',
      async () => {
        try {
          const r = await reserveStock(client, PREFIX, buyer(productId, `f${outages}`));
          // The replica had the sale (we waited for it): nothing but an accept is right.
          expect(r.code).toBe(BuyCode.Accepted);
          accepted += 1;
          return true;
        } catch (error) {
          // Never anything but an outage (the API's 503).
          expect(isServiceOutage(error), String(error)).toBe(true);
          outages += 1;
          return false;
        }
      },
      60_000,
      50,
    );
    expect(outages).toBeGreaterThan(0);
    expect(accepted).toBe(1);
    const promoted = await cluster.masterOf(slot);
    expect(promoted.port).not.toBe(master.port);
    expect(client.masterOf(slot)).toBe(`127.0.0.1:${promoted.port}`);
  });
});
