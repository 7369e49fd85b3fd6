-- The source of truth of a sale. Redis holds the hot copy of stock; every number here can
-- rebuild it (`fsale reconcile --rebuild-redis`).

CREATE TABLE products (
  id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  name           text NOT NULL,
  price_cents    bigint NOT NULL CHECK (price_cents >= 0),
  stock_total    integer NOT NULL CHECK (stock_total >= 0),
  -- Units not held by a live order persisted here: the PG-side stock guard. Persisting an
  -- order decrements it in the same transaction, a release increments it, and the CHECK
  -- makes an oversell impossible even if Redis were wrong.
  remaining      integer NOT NULL CHECK (remaining >= 0 AND remaining <= stock_total),
  per_user_limit integer NOT NULL CHECK (per_user_limit >= 1),
  starts_at      timestamptz NOT NULL DEFAULT now(),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Order statuses and their transitions are listed in src/domain/order-status.ts.
CREATE TABLE orders (
  id              uuid PRIMARY KEY,
  product_id      text NOT NULL REFERENCES products (id),
  user_id         text NOT NULL,
  qty             integer NOT NULL CHECK (qty >= 1),
  status          text NOT NULL CHECK (status IN ('pending', 'paid', 'payment_failed', 'needs_reconciliation')),
  idempotency_key text NOT NULL,
  accepted_at     timestamptz NOT NULL,
  persisted_at    timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  -- Idempotency keys are scoped per product and user (see src/redis/keys.ts).
  UNIQUE (product_id, user_id, idempotency_key)
);

CREATE INDEX orders_open_idx ON orders (status, persisted_at)
  WHERE status IN ('pending', 'needs_reconciliation');
CREATE INDEX orders_user_idx ON orders (user_id);

-- Every attempt to charge an order, as the payment worker saw it.
CREATE TABLE payments (
  id                bigserial PRIMARY KEY,
  order_id          uuid NOT NULL REFERENCES orders (id),
  attempt           integer NOT NULL CHECK (attempt >= 1),
  outcome           text NOT NULL CHECK (outcome IN ('paid', 'declined', 'retryable', 'unknown')),
  http_status       integer,
  gateway_charge_id text,
  latency_ms        integer NOT NULL CHECK (latency_ms >= 0),
  created_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (order_id, attempt)
);

-- One row per released reservation: the primary key makes a release happen at most once.
-- redis_applied_at is null until Redis got the units back; reconcile re-applies those.
CREATE TABLE stock_releases (
  order_id         uuid PRIMARY KEY REFERENCES orders (id),
  product_id       text NOT NULL REFERENCES products (id),
  qty              integer NOT NULL CHECK (qty >= 1),
  reason           text NOT NULL,
  released_at      timestamptz NOT NULL DEFAULT now(),
  redis_applied_at timestamptz
);

CREATE INDEX stock_releases_unapplied_idx ON stock_releases (released_at)
  WHERE redis_applied_at IS NULL;
