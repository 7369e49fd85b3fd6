// The per-product sale state the workers and the API read outside the buy script: which
// products exist, how each one's stock is laid out over shards (docs/ARCHITECTURE.md section
// 10), and its live stock summed over them.
import { execReplicated, isCluster, type Redis } from './client.js';
import type { Durability } from './resp.js';
import {
  baseTag,
  productKeys,
  productsKey,
  shardTag,
  stockMessagePrefix,
  type ProductKeys,
} from './keys.js';
import { PRODUCT_ID } from '../domain/ids.js';
import { keySlot } from './slots.js';

/** The products seeded under `prefix` (the streams the order workers read), sorted. */
export async function saleProductIds(redis: Redis, prefix: string): Promise<string[]> {
  const ids = await redis.smembers(productsKey(prefix));
  // Anything else in the set was not written by seed: never build a key from it.
  return ids.filter((id) => PRODUCT_ID.test(id)).sort();
}

/**
 * Whether `productId` is seeded under `prefix`: its shard 0's sale hash exists (seed writes it
 * after PostgreSQL's row, and the buy script refuses a product without it).
 */
export async function isProductSeeded(
  redis: Redis,
  prefix: string,
  productId: string,
): Promise<boolean> {
  return (await redis.exists(productKeys(prefix, productId).sale)) === 1;
}

/** Most shards one product's stock may be split into (`seed --stock-shards`). */
export const MAX_STOCK_SHARDS = 64;

/**
 * Where a product's stock lives: one key set per shard, shard 0 first. A product seeded
 * without --stock-shards has one. Fixed from seed to the next `seed --reset`.
 */
export interface ProductLayout {
  productId: string;
  shards: ProductKeys[];
}

/** The layout of an unsharded product, or the shape of one before it is read. */
export function singleShard(prefix: string, productId: string): ProductLayout {
  return { productId, shards: [productKeys(prefix, productId)] };
}

/**
 * A product's layout as seed wrote it in shard 0's sale hash (`shards`, and the tags of
 * shards 1.. in `tags`). A product that is not seeded reads as one shard, whose sale hash is
 * missing: the buy script answers unknown product.
 */
export async function readLayout(
  redis: Redis,
  prefix: string,
  productId: string,
): Promise<ProductLayout> {
  const [count, tags] = await redis.hmget(productKeys(prefix, productId).sale, 'shards', 'tags');
  const others = (tags ?? '').split(',').filter((tag) => tag !== '');
  if (Number(count ?? 1) !== others.length + 1) return singleShard(prefix, productId);
  return shardedLayout(prefix, productId, others);
}

/** The layout whose shards 1.. have the hash tags `others`. */
export function shardedLayout(prefix: string, productId: string, others: string[]): ProductLayout {
  const tags = [baseTag(productId), ...others];
  return {
    productId,
    shards: tags.map((tag, shard) =>
      productKeys(prefix, productId, { tag, shard, shards: tags.length }),
    ),
  };
}

/** Every product's layout, sorted by product id. */
export async function readLayouts(redis: Redis, prefix: string): Promise<ProductLayout[]> {
  const ids = await saleProductIds(redis, prefix);
  return Promise.all(ids.map((id) => readLayout(redis, prefix, id)));
}

/**
 * A buyer's home shard: FNV-1a of the user id, so it is the same in every process. It holds
 * the buyer's per-user count, idempotency records and rate limit, so those hold across shards.
 */
export function homeShardIndex(userId: string, shards: number): number {
  if (shards === 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

export function homeShard(layout: ProductLayout, userId: string): ProductKeys {
  const shard = layout.shards[homeShardIndex(userId, layout.shards.length)];
  if (shard === undefined) throw new Error('a layout has at least one shard');
  return shard;
}

/** Units left in each shard of a product, shard 0 first (each GET in its own slot). */
export async function readShardStocks(redis: Redis, layout: ProductLayout): Promise<number[]> {
  const stocks = await Promise.all(layout.shards.map((keys) => redis.get(keys.stock)));
  return stocks.map((stock) => Number(stock ?? 0));
}

/**
 * Units left in a product: the sum of its shards' stock, and the units moving between them
 * (a move takes them out of one shard before the other has them; they are still for sale).
 */
export async function readStockTotal(redis: Redis, layout: ProductLayout): Promise<number> {
  const [stocks, moving] = await Promise.all([
    readShardStocks(redis, layout),
    layout.shards.length > 1 ? unitsInTransit(redis, layout) : 0,
  ]);
  return stocks.reduce((sum, stock) => sum + Math.max(0, stock), moving);
}

/**
 * Hash tags for shards 1..count-1 whose slots are owned by other masters than shard 0's, in
 * turn, so a hot product's buys spread over the cluster's cores. On one node every tag is on
 * the same node; the layout is the same, only the spread is lost.
 */
export function chooseShardTags(redis: Redis, productId: string, count: number): string[] {
  const owner = slotOwner(redis);
  const masters = [...new Set(Array.from({ length: 16_384 }, (_, slot) => owner(slot)))];
  const first = owner(keySlot(`{${baseTag(productId)}}`));
  masters.sort((a, b) => (a === first ? -1 : b === first ? 1 : a.localeCompare(b)));
  const tags: string[] = [];
  for (let shard = 1; shard < count; shard++) {
    const wanted = masters[shard % masters.length];
    let spread = 0;
    // A tag lands on a given one of M masters once in M tries on average.
    while (spread < 1_000 && owner(keySlot(`{${shardTag(productId, shard, spread)}}`)) !== wanted)
      spread++;
    tags.push(shardTag(productId, shard, spread === 1_000 ? 0 : spread));
  }
  return tags;
}

/** slot -> the address of the master serving it (one node: always the same). */
function slotOwner(redis: Redis): (slot: number) => string {
  if (!isCluster(redis)) return () => 'node';
  const slots = redis.slots;
  return (slot) => slots[slot]?.[0] ?? 'unassigned';
}

/** A move of units between two shards that the lender has not yet seen received. */
export interface Transfer {
  id: string;
  /** The destination shard's hash tag. */
  to: string;
  units: number;
}

/** The transfers lent by `from` and not yet settled (lend-3.lua writes them). */
export async function transfersInTransit(redis: Redis, from: ProductKeys): Promise<Transfer[]> {
  const entries = await redis.hgetall(from.transit);
  return Object.entries(entries).flatMap(([id, value]) => {
    const split = value.lastIndexOf('|');
    const units = Number(value.slice(split + 1));
    return split > 0 && Number.isSafeInteger(units)
      ? [{ id, to: value.slice(0, split), units }]
      : [];
  });
}

/** The lender forgets a transfer once its destination has it (with WAIT, see execReplicated). */
export async function settleTransfer(
  redis: Redis,
  from: ProductKeys,
  id: string,
  durability?: Durability,
): Promise<void> {
  if (durability === undefined) await redis.hdel(from.transit, id);
  else await execReplicated(redis.pipeline().hdel(from.transit, id), durability);
}

/** Whether `to` has received transfer `id` (the audit counts units lent and not received). */
export async function wasReceived(redis: Redis, to: ProductKeys, id: string): Promise<boolean> {
  return (await redis.sismember(to.received, id)) === 1;
}

/** A product's sale settings, the same on every shard (the buy script reads them there). */
export interface SaleSettings {
  total: number;
  limit: number;
  /** ms since the epoch. */
  starts: number;
}

/**
 * Writes one shard's sale state in one MULTI (its own slot): units, settings, the shard count
 * (and, on shard 0, the other shards' tags, so readLayout finds them), then its stock publish.
 * `extra` adds the shard's other keys to the same MULTI (`--rebuild-redis`: counts, releases).
 */
export async function writeShardState(
  redis: Redis,
  layout: ProductLayout,
  keys: ProductKeys,
  state: { stock: number; settings: SaleSettings },
  extra?: (multi: ReturnType<Redis['multi']>) => void,
): Promise<void> {
  const { total, limit, starts } = state.settings;
  const sale: Record<string, string | number> = { total, limit, starts };
  if (layout.shards.length > 1) {
    sale.shards = layout.shards.length;
    if (keys.shard === 0)
      sale.tags = layout.shards
        .slice(1)
        .map((shard) => shard.tag)
        .join(',');
  }
  const multi = redis.multi().del(keys.stock, keys.sale).set(keys.stock, state.stock);
  multi.hset(keys.sale, sale).incr(keys.moves);
  extra?.(multi);
  multi.spublish(keys.stockChannel, `${stockMessagePrefix(keys)}${state.stock}`);
  const results = (await multi.exec()) ?? [];
  for (const [error] of results) if (error !== null) throw error;
}

/** `total` units dealt over `shards` shards as evenly as they go (the first ones get the rest). */
export function splitStock(total: number, shards: number): number[] {
  return Array.from(
    { length: shards },
    (_, shard) => Math.floor(total / shards) + (shard < total % shards ? 1 : 0),
  );
}

/** A transfer in transit with the shards it goes between (`to` undefined: not in the layout). */
export interface TransferInTransit extends Transfer {
  from: ProductKeys;
  destination: ProductKeys | undefined;
}

/** Every transfer in transit between the shards of a product. */
export async function productTransfers(
  redis: Redis,
  layout: ProductLayout,
): Promise<TransferInTransit[]> {
  const byTag = new Map(layout.shards.map((shard) => [shard.tag, shard]));
  const lent = await Promise.all(
    layout.shards.map(async (from) =>
      (await transfersInTransit(redis, from)).map((transfer) => ({
        ...transfer,
        from,
        destination: byTag.get(transfer.to),
      })),
    ),
  );
  return lent.flat();
}

/** The transfers lent by one shard of the product and not yet received by another: id -> units. */
export async function unreceivedTransfers(
  redis: Redis,
  layout: ProductLayout,
): Promise<Map<string, number>> {
  const pending = new Map<string, number>();
  for (const transfer of await productTransfers(redis, layout)) {
    const { destination } = transfer;
    if (destination === undefined || !(await wasReceived(redis, destination, transfer.id)))
      pending.set(transfer.id, transfer.units);
  }
  return pending;
}

/** Units lent by one shard of the product and not yet received by another (audit). */
export async function unitsInTransit(redis: Redis, layout: ProductLayout): Promise<number> {
  let units = 0;
  for (const moving of (await unreceivedTransfers(redis, layout)).values()) units += moving;
  return units;
}

/** The units left of every seeded product, summed over its shards (for /metrics). */
export async function stockLevels(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const layouts = await readLayouts(redis, prefix);
  const stocks = await Promise.all(layouts.map((layout) => readStockTotal(redis, layout)));
  return new Map(layouts.map((layout, i) => [layout.productId, stocks[i] ?? 0]));
}

/**
 * Of these products, the one whose owner index (written by the buy script, on the buyer's
 * home shard) says `userId` placed order `orderId`, if any: an order accepted but not yet
 * persisted. One HGET per product: on a Redis Cluster the owner indexes live in other slots.
 */
export async function productOfOwnedOrder(
  redis: Redis,
  layouts: readonly ProductLayout[],
  orderId: string,
  userId: string,
): Promise<ProductLayout | undefined> {
  const owners = await Promise.all(
    layouts.map((layout) => redis.hget(homeShard(layout, userId).owners, orderId)),
  );
  return layouts[owners.indexOf(userId)];
}

/** The order that holds the idempotency key `orderId` was accepted again under, if superseded. */
export function supersedingOrder(
  redis: Redis,
  shard: ProductKeys,
  orderId: string,
): Promise<string | null> {
  return redis.hget(shard.superseded, orderId);
}
