import { Flags } from '@oclif/core';
import { FsaleCommand, serviceFlags } from '../cli/base.js';
import { UsageError } from '../domain/errors.js';
import { MAX_STOCK_SHARDS } from '../redis/sale-state.js';
import { withStores } from '../stores.js';
import { seedProduct, type SeedResult } from '../sale/seed.js';

export default class Seed extends FsaleCommand {
  static override summary = 'Create or reset a product and its stock in PostgreSQL and Redis.';
  static override description = `Writes the product to PostgreSQL and its sale state (stock, per-user limit, start time) to Redis under the key prefix. A product that already has orders is refused unless --reset is given; --reset clears that product's orders, payments, releases, order stream and idempotency records, and nothing else (other products, prefixes and databases are untouched).`;
  static override examples = [
    '<%= config.bin %> seed --product p1 --stock 1000',
    '<%= config.bin %> seed --product p1 --stock 500 --per-user-limit 2 --price-cents 4999 --reset',
    '<%= config.bin %> seed --product p2 --stock 100 --starts-at 2026-12-01T10:00:00Z --json',
    '<%= config.bin %> seed --product hot --stock 100000 --stock-shards 3 --reset',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    product: Flags.string({ description: 'product id (letters, digits, _ and -)', required: true }),
    stock: Flags.integer({ description: 'units for sale', required: true, min: 0 }),
    name: Flags.string({ description: 'display name [default: "Product <id>"]' }),
    'price-cents': Flags.integer({ description: 'price in cents', default: 1999, min: 0 }),
    'per-user-limit': Flags.integer({ description: 'units one user may buy', default: 1, min: 1 }),
    'starts-at': Flags.string({ description: 'sale start, ISO 8601 [default: now]' }),
    reset: Flags.boolean({ description: "clear this product's orders and sale state first" }),
    'stock-shards': Flags.integer({
      description:
        "split the stock over this many Redis shards, placed on different masters of a Redis Cluster, so one hot product's buys use several Redis cores; each buyer buys on a home shard chosen from the user id, which borrows from the others when it runs out (docs/ARCHITECTURE.md section 10)",
      default: 1,
      min: 1,
      max: MAX_STOCK_SHARDS,
    }),
  };

  async run(): Promise<SeedResult> {
    const { flags } = await this.parse(Seed);
    const config = this.settings(flags);
    let startsAt: Date | undefined;
    if (flags['starts-at'] !== undefined) {
      startsAt = new Date(flags['starts-at']);
      if (Number.isNaN(startsAt.getTime())) {
        throw new UsageError(`--starts-at is not an ISO 8601 date: ${flags['starts-at']}`);
      }
    }
    return withStores({ ...config, poolMax: 2 }, async (stores) => {
      const result = await seedProduct(stores, {
        productId: flags.product,
        stock: flags.stock,
        name: flags.name,
        priceCents: flags['price-cents'],
        perUserLimit: flags['per-user-limit'],
        startsAt,
        reset: flags.reset,
        stockShards: flags['stock-shards'],
      });
      this.log(
        `${result.reset ? 'reset' : 'seeded'} ${result.productId}: ${result.stock} units, limit ${result.perUserLimit} per user, starts ${result.startsAt}` +
          (result.stockShards > 1
            ? `, ${result.stockShards} stock shards (order streams ${result.orderStreams.join(' ')})`
            : '') +
          (result.reset ? ` (cleared ${result.deletedOrders} orders)` : ''),
      );
      return result;
    });
  }
}
