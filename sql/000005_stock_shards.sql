-- How many Redis shards a product's stock is split into (`fsale seed --stock-shards`,
-- docs/ARCHITECTURE.md section 10). Redis holds the layout; PostgreSQL keeps the count so that
-- `fsale reconcile --rebuild-redis` can lay a product out again after Redis lost its data.
ALTER TABLE products ADD COLUMN stock_shards integer NOT NULL DEFAULT 1 CHECK (stock_shards >= 1);
