// `fsale demo`, the README's first command, end to end at a small size: the whole stack, a
// sale, every order followed to its payment, the audit, a summary in the server's numbers and
// what to try next. With --redis-cluster, the same on a private Redis Cluster it starts (the
// flood's --follow and its audit run against the cluster too).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useTestServices } from '../helpers/services.js';

/** Runs a small `fsale demo` with `extra` flags in a data dir of its own. */
async function smallDemo(productId: string, extra: string[] = []) {
  const s = await useTestServices();
  const dir = await mkdtemp(join(tmpdir(), 'fsale-demo-'));
  try {
    return await runCli(
      [
        'demo',
        '--stock',
        '20',
        '--users',
        '300',
        '--rate',
        '150',
        '--gateway-speed',
        '100',
        '--port',
        '0',
        '--gateway-port',
        '0',
        '--data-dir',
        dir,
        '--product',
        productId,
        ...extra,
      ],
      s.env,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('fsale demo', () => {
  it('runs a small sale through the whole stack, audits it and says what to try next', async () => {
    const demo = await smallDemo('demo-test');
    // 4 would only say this busy machine's generator fell behind (inconclusive), not the sale.
    expect([0, 4], demo.stdout + demo.stderr).toContain(demo.code);
    expect(demo.stdout).toMatch(/A flash sale of 20 units/);
    expect(demo.stdout).toMatch(/invariants\s+OK/);
    expect(demo.stdout).toMatch(/What to try next:/);
    expect(demo.stdout).toMatch(/fsale watch --product demo-test/);
  });

  it('--redis-cluster runs the same sale on a private Redis Cluster, followed and audited there', async () => {
    const demo = await smallDemo('demo-cluster', ['--redis-cluster']);
    expect([0, 4], demo.stdout + demo.stderr).toContain(demo.code);
    expect(demo.stdout + demo.stderr).toMatch(
      /started a private Redis Cluster of 3 masters and 3 replicas at redis:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}/,
    );
    expect(demo.stdout).toMatch(/A flash sale of 20 units/);
    expect(demo.stdout).toMatch(/invariants\s+OK/);
  });
});
