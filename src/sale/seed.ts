import type { Redis } from '../redis/client.js';
import { countProductOrders, deleteProductOrders } from '../db/orders.js';
import { deleteProductPayments } from '../db/payments.js';
import { inTransaction, type Pool } from '../db/pool.js';
import { upsertProduct } from '../db/products.js';
import { deleteProductReleases } from '../db/releases.js';
import { UsageError } from '../domain/errors.js';
import { PRODUCT_ID } from '../domain/ids.js';
import { deleteMatching } from '../redis/client.js';
import { productKeyPatterns, productsKey } from '../redis/keys.js';
import {
  MAX_STOCK_SHARDS,
  chooseShardTags,
  readLayout,
  shardedLayout,
  splitStock,
  writeShardState,
} from '../redis/sale-state.js';
import { ensureOrderGroup } from '../redis/streams.js';

export interface SeedInput {
  productId: string;
  stock: number;
  name?: string | undefined;
  priceCents?: number | undefined;
  perUserLimit?: number | undefined;
  startsAt?: Date | undefined;
  /** Clear this product's orders, stream, releases and idempotency records first. */
  reset?: boolean | undefined;
  /** Split the stock over this many Redis shards (docs/ARCHITECTURE.md section 10); default 1. */
  stockShards?: number | undefined;
}

export interface SeedResult {
  productId: string;
  name: string;
  stock: number;
  priceCents: number;
  perUserLimit: number;
  startsAt: string;
  reset: boolean;
  stockShards: number;
  /**
   * The product's order streams, shard 0 first: what `work orders` consumes and what a
   * stream-lag autoscaler watches (one per shard; a shard's name depends on where its slot is).
   */
  orderStreams: string[];
  /** Orders deleted from PostgreSQL (with reset) and this product's keys deleted from Redis. */
  deletedOrders: number;
  deletedKeys: number;
}

export const MAX_STOCK = 100_000_000;

interface Sale {
  productId: string;
  stock: number;
  name: string;
  priceCents: number;
  perUserLimit: number;
  startsAt: Date;
  reset: boolean;
  stockShards: number;
}

function validate(input: SeedInput): Sale {
  if (!PRODUCT_ID.test(input.productId)) {
    throw new UsageError(
      `product id must be 1-64 letters, digits, '_' or '-', got ${JSON.stringify(input.productId)}`,
    );
  }
  const integer = (name: string, value: number, min: number, max: number): number => {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
    }
    return value;
  };
  const startsAt = input.startsAt ?? new Date();
  if (Number.isNaN(startsAt.getTime())) throw new UsageError('starts-at is not a valid date');
  return {
    productId: input.productId,
    stock: integer('stock', input.stock, 0, MAX_STOCK),
    name: input.name ?? `Product ${input.productId}`,
    priceCents: integer('price-cents', input.priceCents ?? 1999, 0, Number.MAX_SAFE_INTEGER),
    perUserLimit: integer('per-user-limit', input.perUserLimit ?? 1, 1, MAX_STOCK),
    startsAt,
    reset: input.reset === true,
    stockShards: integer('stock-shards', input.stockShards ?? 1, 1, MAX_STOCK_SHARDS),
  };
}

/**
 * Writes a product to PostgreSQL and its sale state to Redis. Without `reset`, refuses to
 * touch a product that already has orders (in PG or still in its Redis stream), because
 * re-stocking a live sale would break conservation. With `reset`, clears only that product's
 * orders, payments, releases and Redis keys under this prefix.
 */
export async function seedProduct(
  ctx: { pool: Pool; redis: Redis; keyPrefix: string },
  input: SeedInput,
): Promise<SeedResult> {
  const sale = validate(input);

  if (!sale.reset) {
    const existing = await readLayout(ctx.redis, ctx.keyPrefix, sale.productId);
    const counts = await Promise.all(
      existing.shards.map((keys) =>
        Promise.all([
          ctx.redis.xlen(keys.orders),
          ctx.redis.xlen(keys.deadLetter),
          ctx.redis.hlen(keys.bought),
        ]),
      ),
    );
    const [streamed, dead, buyers] = counts.reduce(
      (sum, shard) => [sum[0] + shard[0], sum[1] + shard[1], sum[2] + shard[2]],
      [0, 0, 0],
    );
    const orders = await countProductOrders(ctx.pool, sale.productId);
    if (orders > 0 || streamed + dead + buyers > 0) {
      throw new UsageError(
        `product ${sale.productId} already has orders (${orders} in PostgreSQL, ${streamed + dead} in its Redis streams); pass --reset to clear them`,
      );
    }
  }

  const deletedOrders = await inTransaction(ctx.pool, async (client) => {
    let deleted = 0;
    if (sale.reset) {
      await deleteProductPayments(client, sale.productId);
      await deleteProductReleases(client, sale.productId);
      deleted = await deleteProductOrders(client, sale.productId);
    }
    await upsertProduct(client, sale);
    return deleted;
  });

  // PG first: if Redis fails here, running seed again converges (it is idempotent). Without
  // reset the product had no orders, so its remaining keys hold only rejections; clear them too.
  let deletedKeys = 0;
  for (const pattern of productKeyPatterns(ctx.keyPrefix, sale.productId))
    deletedKeys += await deleteMatching(ctx.redis, pattern);
  const layout = shardedLayout(
    ctx.keyPrefix,
    sale.productId,
    chooseShardTags(ctx.redis, sale.productId, sale.stockShards),
  );
  const stocks = splitStock(sale.stock, sale.stockShards);
  const settings = {
    total: sale.stock,
    limit: sale.perUserLimit,
    starts: sale.startsAt.getTime(),
  };
  // Shard 0 last: it names the others, so a reader that finds the layout finds their keys.
  for (const keys of [...layout.shards.slice(1), ...layout.shards.slice(0, 1)]) {
    await writeShardState(ctx.redis, layout, keys, { stock: stocks[keys.shard] ?? 0, settings });
    await ensureOrderGroup(ctx.redis, keys.orders);
  }
  // Apart from the shards' MULTIs: the products set lives in another slot on a Redis Cluster.
  // Announced last, so a worker that finds the product finds its keys.
  await ctx.redis.sadd(productsKey(ctx.keyPrefix), sale.productId);

  return {
    productId: sale.productId,
    name: sale.name,
    stock: sale.stock,
    priceCents: sale.priceCents,
    perUserLimit: sale.perUserLimit,
    startsAt: sale.startsAt.toISOString(),
    reset: sale.reset,
    stockShards: sale.stockShards,
    orderStreams: layout.shards.map((keys) => keys.orders),
    deletedOrders,
    deletedKeys,
  };
}
