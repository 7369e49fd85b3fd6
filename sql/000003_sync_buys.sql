-- `fsale serve --mode sync` (Approach 1): the buy is one PostgreSQL transaction. Redis is not
-- the gate in this mode, so the idempotency records live here, keyed like the Redis ones
-- (product, user, key), with the request fingerprint and the answer, for 24 h.

-- Only final answers are recorded (code 1 accepted, 2 sold out, 3 insufficient stock, 4 limit
-- reached: BuyCode in src/sale/buy.ts), exactly as the Redis buy script does; a not-open,
-- unknown-product or rate-limited answer changes nothing and is not recorded.
CREATE TABLE buy_idempotency (
  product_id      text NOT NULL,
  user_id         text NOT NULL,
  idempotency_key text NOT NULL,
  fingerprint     text NOT NULL,
  code            smallint NOT NULL CHECK (code BETWEEN 1 AND 4),
  order_id        uuid CHECK ((code = 1) = (order_id IS NOT NULL)),
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (product_id, user_id, idempotency_key)
);

CREATE INDEX buy_idempotency_expiry_idx ON buy_idempotency (expires_at);

-- One sync-mode buy, in one round trip (the caller's statement is the transaction). Returns
-- the BuyCode, whether it is a replay, the order id (accepted) and the units left (accepted,
-- else -1).
--
-- Concurrency: every buy of a product that may change something takes the product's row lock
-- (FOR NO KEY UPDATE, the lock the stock UPDATE takes anyway) before deciding. So two requests
-- with one Idempotency-Key run one after the other: the second re-reads the record under the
-- lock, sees the first one's committed answer and replays it. The per-user limit is counted
-- under the same lock, so two keys of one user cannot both slip under it. The primary key of
-- buy_idempotency and orders' unique (product_id, user_id, idempotency_key) make a second
-- order for one key impossible even if this reasoning were wrong.
--
-- p_rate_limited is the Redis rate limiter's verdict (counted before this call); it applies
-- after the replay and product checks, in the order the Redis buy script uses.
CREATE FUNCTION fsale_sync_buy(
  p_order_id uuid,
  p_product_id text,
  p_user_id text,
  p_qty integer,
  p_key text,
  p_fingerprint text,
  p_now timestamptz,
  p_ttl_seconds integer,
  p_rate_limited boolean,
  OUT r_code integer,
  OUT r_replayed boolean,
  OUT r_order_id text,
  OUT r_remaining integer
) LANGUAGE plpgsql AS $$
DECLARE
  v_record record;
  v_limit integer;
  v_starts timestamptz;
  v_left integer;
  v_held integer;
  v_holder uuid;
  v_holder_qty integer;
BEGIN
  r_replayed := false;
  r_order_id := '';
  r_remaining := -1;

  -- A replay costs one index read and no lock.
  SELECT fingerprint, code, order_id INTO v_record FROM buy_idempotency
   WHERE product_id = p_product_id AND user_id = p_user_id AND idempotency_key = p_key
     AND expires_at > now();
  IF FOUND THEN
    IF v_record.fingerprint <> p_fingerprint THEN r_code := 7; RETURN; END IF;
    r_code := v_record.code;
    r_replayed := true;
    r_order_id := coalesce(v_record.order_id::text, '');
    RETURN;
  END IF;

  SELECT per_user_limit, starts_at INTO v_limit, v_starts FROM products WHERE id = p_product_id;
  IF NOT FOUND THEN r_code := 6; RETURN; END IF;
  IF p_rate_limited THEN r_code := 8; RETURN; END IF;
  IF p_now < v_starts THEN r_code := 5; RETURN; END IF;

  SELECT remaining INTO v_left FROM products WHERE id = p_product_id FOR NO KEY UPDATE;
  -- A request with the same key may have committed while we waited for the lock.
  SELECT fingerprint, code, order_id INTO v_record FROM buy_idempotency
   WHERE product_id = p_product_id AND user_id = p_user_id AND idempotency_key = p_key
     AND expires_at > now();
  IF FOUND THEN
    IF v_record.fingerprint <> p_fingerprint THEN r_code := 7; RETURN; END IF;
    r_code := v_record.code;
    r_replayed := true;
    r_order_id := coalesce(v_record.order_id::text, '');
    RETURN;
  END IF;

  IF v_left <= 0 THEN
    r_code := 2;
  ELSIF v_left < p_qty THEN
    r_code := 3;
  ELSE
    SELECT coalesce(sum(qty), 0)::integer INTO v_held FROM orders
     WHERE product_id = p_product_id AND user_id = p_user_id AND status <> 'payment_failed';
    IF v_held + p_qty > v_limit THEN
      r_code := 4;
    ELSE
      INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
      VALUES (p_order_id, p_product_id, p_user_id, p_qty, 'pending', p_key, p_now)
      ON CONFLICT (product_id, user_id, idempotency_key) DO NOTHING;
      IF FOUND THEN
        -- The stock guard (the CHECK on remaining is the last line behind it).
        UPDATE products SET remaining = remaining - p_qty, updated_at = now()
         WHERE id = p_product_id AND remaining >= p_qty
        RETURNING remaining INTO v_left;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'stock guard refused % units of % under its row lock', p_qty, p_product_id;
        END IF;
        r_code := 1;
        r_order_id := p_order_id::text;
        r_remaining := v_left;
      ELSE
        -- The key already holds an order whose record has expired (older than 24 h): that
        -- order is still the answer to this key.
        SELECT id, qty INTO v_holder, v_holder_qty FROM orders
         WHERE product_id = p_product_id AND user_id = p_user_id AND idempotency_key = p_key;
        IF v_holder_qty <> p_qty THEN r_code := 7; RETURN; END IF;
        r_code := 1;
        r_replayed := true;
        r_order_id := v_holder::text;
      END IF;
    END IF;
  END IF;

  -- Takes over an expired record of the same key, if one is still there.
  INSERT INTO buy_idempotency
    (product_id, user_id, idempotency_key, fingerprint, code, order_id, expires_at)
  VALUES (p_product_id, p_user_id, p_key, p_fingerprint, r_code,
          CASE WHEN r_code = 1 THEN r_order_id::uuid END,
          now() + p_ttl_seconds * interval '1 second')
  ON CONFLICT (product_id, user_id, idempotency_key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, code = EXCLUDED.code, order_id = EXCLUDED.order_id,
        created_at = now(), expires_at = EXCLUDED.expires_at;
END
$$;
