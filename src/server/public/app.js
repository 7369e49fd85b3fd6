// The storefront: live stock over EventSource, a Buy button that sends one Idempotency-Key
// per click (and the same key again when that click is retried), and the order followed
// from queued to confirmed or failed over its own event stream.
const params = new URLSearchParams(location.search);
const productId = params.get('product') ?? 'p1';
const userId = params.get('user') ?? `shopper-${Math.random().toString(36).slice(2, 8)}`;
const $ = (id) => document.getElementById(id);
let token;
let total = 0;
let pendingKey; // the key of a click whose answer we have not got yet

function show(text) {
  $('status').textContent = text;
}

function renderStock(remaining) {
  $('remaining').textContent = String(remaining);
  $('bar').style.width = total > 0 ? `${(100 * remaining) / total}%` : '0%';
  if (remaining === 0 && pendingKey === undefined) $('buy').disabled = true;
}

// The page signs in only through the demo login, which a production server does not have:
// there it shows the live stock and says plainly that buying from this page is off.
const DEMO_LOGIN_OFF =
  'Demo sign-in is off on this server, so this page cannot buy. Live stock is still shown.';

async function login() {
  const response = await fetch(`/demo/token?user=${encodeURIComponent(userId)}`);
  if (response.status === 404) return false;
  if (!response.ok) throw new Error(`sign-in failed (${response.status})`);
  ({ token } = await response.json());
  $('user').textContent = userId;
  return true;
}

async function loadProduct() {
  const response = await fetch(`/products/${encodeURIComponent(productId)}`);
  if (!response.ok) throw new Error(`unknown product ${productId}`);
  const product = await response.json();
  total = product.stockTotal;
  $('name').textContent = product.name;
  $('price').textContent = `$${(product.priceCents / 100).toFixed(2)}`;
  $('total').textContent = String(total);
  renderStock(product.remaining);
}

function followStock() {
  const source = new EventSource(`/stock/${encodeURIComponent(productId)}/stream`);
  source.addEventListener('stock', (event) => renderStock(JSON.parse(event.data).remaining));
}

function followOrder(orderId) {
  const source = new EventSource(
    `/order/${orderId}/stream?access_token=${encodeURIComponent(token)}`,
  );
  const finish = (text) => {
    show(text);
    source.close();
  };
  source.addEventListener('order_queued', () => show('Queued: your unit is reserved…'));
  source.addEventListener('order_persisted', () => show('Reserved: charging your card…'));
  source.addEventListener('needs_reconciliation', () =>
    show('Payment outcome unknown: checking with the bank…'),
  );
  source.addEventListener('order_confirmed', () => finish('Confirmed! Your order is paid.'));
  source.addEventListener('payment_failed', () =>
    finish('Payment failed: the unit went back on sale.'),
  );
}

async function buy() {
  // A new click gets a new key; "Try again" re-sends the same key, so it can never buy twice.
  pendingKey ??= crypto.randomUUID();
  $('buy').disabled = true;
  $('retry').hidden = true;
  show('Sending…');
  try {
    const response = await fetch('/order/buy', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': pendingKey,
      },
      body: JSON.stringify({ productId, qty: 1 }),
    });
    const body = await response.json();
    if (response.status === 202) {
      pendingKey = undefined;
      show('Queued: your unit is reserved…');
      followOrder(body.orderId);
      return;
    }
    if (response.status === 429 || response.status === 503 || response.status >= 500) {
      show(`${body.title ?? 'Busy'}: try again.`);
      $('retry').hidden = false;
      return;
    }
    pendingKey = undefined;
    show(body.title ?? `Refused (${response.status})`);
    $('buy').disabled = false;
  } catch {
    show('Network error: try again (your click is not lost or doubled).');
    $('retry').hidden = false;
  }
}

$('buy').addEventListener('click', () => void buy());
$('retry').addEventListener('click', () => void buy());

try {
  await loadProduct();
  followStock();
  if (await login()) $('buy').disabled = $('remaining').textContent === '0';
  else {
    $('signed-in').hidden = true;
    show(DEMO_LOGIN_OFF);
  }
} catch (error) {
  show(error.message);
}
