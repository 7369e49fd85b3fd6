// The payment gateway of bench/capacity.ts: the mock provider of `fsale gateway`, but with no
// failures and (almost) no latency, so a payment worker's charges/s is the worker's own
// ceiling (its CPU and PostgreSQL), not the mock's 650 ms median. `fsale gateway` has no flag
// for the failure rates; the model adds the real gateway's latency back (docs/capacity.md).
// Prints its URL and waits.
import { buildGateway, listenGateway } from '../../src/gateway/app.js';

const app = buildGateway({
  seed: 1,
  // Divides the log-normal latency: a 650 ms median becomes 0.65 µs.
  speed: 1e6,
  rates: { hang: 0, unavailable: 0, rateLimited: 0, declined: 0 },
});
const url = await listenGateway(app, '127.0.0.1', 0);
console.log(`listening on ${url}`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
