-- Idempotency, one rule in both modes: an accepted buy's answer is its order, for as long as
-- the order exists; a rejection (sold out, insufficient stock, limit reached, not open, rate
-- limited) reserved nothing, is not recorded, and a retry with the same key is a new attempt.
-- In sync mode the order row (unique (product_id, user_id, idempotency_key)) is the record, so
-- buy_idempotency, whose records expired after 24 h and stored every rejection, goes.
--
-- The sale window is checked against PostgreSQL's clock (now(), the transaction's start), not
-- the API host's: with many API hosts, one whose clock runs fast must not open the sale early.
DROP FUNCTION fsale_sync_buy(uuid, text, text, integer, text, text, timestamptz, integer, boolean);
DROP TABLE buy_idempotency;

-- One sync-mode buy, in one round trip (the caller's statement is the transaction). Returns
-- the BuyCode (src/sale/buy.ts), whether it is a replay, the order id (accepted) and the units
-- left (accepted, else -1).
--
-- Concurrency: every buy of a product that may change something takes the product's row lock
-- (FOR NO KEY UPDATE, the lock the stock UPDATE takes anyway) before deciding. So two requests
-- with one Idempotency-Key run one after the other: the second re-reads the key's order under
-- the lock, finds the first one's committed order and replays it. The per-user limit is
-- counted under the same lock, so two keys of one user cannot both slip under it. The unique
-- (product_id, user_id, idempotency_key) makes a second order for one key impossible even if
-- this reasoning were wrong.
--
-- p_rate_limited is the Redis rate limiter's verdict (counted before this call); it applies
-- after the replay and product checks, in the order the Redis buy script uses.
CREATE FUNCTION fsale_sync_buy(
  p_order_id uuid,
  p_product_id text,
  p_user_id text,
  p_qty integer,
  p_key text,
  p_rate_limited boolean,
  OUT r_code integer,
  OUT r_replayed boolean,
  OUT r_order_id text,
  OUT r_remaining integer
) LANGUAGE plpgsql AS $$
DECLARE
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
  SELECT id, qty INTO v_holder, v_holder_qty FROM orders
   WHERE product_id = p_product_id AND user_id = p_user_id AND idempotency_key = p_key;
  IF FOUND THEN
    r_code := CASE WHEN v_holder_qty = p_qty THEN 1 ELSE 7 END;
    r_replayed := r_code = 1;
    r_order_id := CASE WHEN r_code = 1 THEN v_holder::text ELSE '' END;
    RETURN;
  END IF;

  SELECT per_user_limit, starts_at INTO v_limit, v_starts FROM products WHERE id = p_product_id;
  IF NOT FOUND THEN r_code := 6; RETURN; END IF;
  IF p_rate_limited THEN r_code := 8; RETURN; END IF;
  IF now() < v_starts THEN r_code := 5; RETURN; END IF;

  SELECT remaining INTO v_left FROM products WHERE id = p_product_id FOR NO KEY UPDATE;
  -- A request with the same key may have committed while we waited for the lock.
  SELECT id, qty INTO v_holder, v_holder_qty FROM orders
   WHERE product_id = p_product_id AND user_id = p_user_id AND idempotency_key = p_key;
  IF FOUND THEN
    r_code := CASE WHEN v_holder_qty = p_qty THEN 1 ELSE 7 END;
    r_replayed := r_code = 1;
    r_order_id := CASE WHEN r_code = 1 THEN v_holder::text ELSE '' END;
    RETURN;
  END IF;

  IF v_left <= 0 THEN r_code := 2; RETURN; END IF;
  IF v_left < p_qty THEN r_code := 3; RETURN; END IF;
  SELECT coalesce(sum(qty), 0)::integer INTO v_held FROM orders
   WHERE product_id = p_product_id AND user_id = p_user_id AND status <> 'payment_failed';
  IF v_held + p_qty > v_limit THEN r_code := 4; RETURN; END IF;

  INSERT INTO orders (id, product_id, user_id, qty, status, idempotency_key, accepted_at)
  VALUES (p_order_id, p_product_id, p_user_id, p_qty, 'pending', p_key, now());
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
END
$$;
