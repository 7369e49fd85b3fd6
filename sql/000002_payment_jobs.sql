-- Pending orders are the payment worker's job queue. A worker takes a job by leasing it
-- (payment_lease_until in the future); if the worker dies, the lease runs out and another one
-- charges again with the same idempotency key (the order id), which the gateway deduplicates.
ALTER TABLE orders
  ADD COLUMN payment_attempts integer NOT NULL DEFAULT 0 CHECK (payment_attempts >= 0),
  ADD COLUMN payment_lease_until timestamptz;

CREATE INDEX orders_payment_queue_idx ON orders (persisted_at)
  WHERE status = 'pending';
