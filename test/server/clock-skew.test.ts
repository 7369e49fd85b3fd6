// With many API hosts, one whose clock runs fast must not open the sale early: the sale
// window is decided on the clock every host shares (Redis's TIME in queue mode, PostgreSQL's
// now() in sync mode), never on the host's own.
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUY_MODES } from '../../src/sale/buy.js';
import { startCli } from '../helpers/process.js';
import { buy, freshKey, seed, tokenFor } from '../helpers/sale.js';
import { useTestServices, type TestServices } from '../helpers/services.js';
import { sleep } from '../helpers/wait.js';

const SKEWED_CLOCK = fileURLToPath(new URL('../helpers/skewed-clock.js', import.meta.url));
const TWO_HOURS = 2 * 3_600_000;

describe.each(BUY_MODES)('the sale window in %s mode', (mode) => {
  let s: TestServices;
  beforeAll(async () => {
    s = await useTestServices();
  });

  it('an API host whose clock runs two hours fast cannot sell before the sale opens', async () => {
    const productId = `skew-${mode}`;
    await seed(s, { productId, stock: 10, startsAt: new Date(Date.now() + 3_600_000) });
    const api = startCli(['serve', '--port', '0', '--mode', mode], {
      ...s.env,
      NODE_OPTIONS: `--import ${SKEWED_CLOCK}`,
      FSALE_TEST_CLOCK_SKEW_MS: String(TWO_HOURS),
    });
    try {
      const url = await api.waitFor(/listening on (http:\/\/[\d.:]+)/);
      // The token must be valid on the skewed host too. A 503 overloaded is no decision on
      // the window (a loaded CI machine can stall a process that just started): the client's
      // contract is to retry it, as here, with the same key.
      const request = { token: tokenFor('early', 4 * 3600), productId, key: freshKey() };
      let r = await buy({ url }, request);
      for (let retries = 0; r.status === 503 && retries < 10; retries++) {
        await sleep(1000 * Number(r.headers['retry-after'] ?? 1));
        r = await buy({ url }, request);
      }
      expect(r.status, r.body).toBe(409);
      expect((JSON.parse(r.body) as { type: string }).type).toBe('urn:fsale:problem:not_open');
    } finally {
      api.child.kill('SIGTERM');
      await api.exited;
    }
  });
});
