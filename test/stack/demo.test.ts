// `fsale demo`, the README's first command, end to end at a small size: the whole stack, a
// sale, every order followed to its payment, the audit, a summary in the server's numbers and
// what to try next, each step of which is checked: its commands and flags are real, the re-seed
// puts the sold units back, the addresses are the stack `fsale up` would serve. With
// --redis-cluster, the same on a private Redis Cluster it starts (the flood's --follow and its
// audit run against the cluster too).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { RUN_JS, runCli } from '../helpers/cli.js';
import { cliCommands } from '../helpers/cli-commands.js';
import { saleState } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';

const sh = promisify(execFile);

/** A demo small enough for a test: 20 units, 300 buyers, its own ports and data directory. */
function smallDemo(dir: string, productId: string): string[] {
  return [
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
  ];
}

describe('fsale demo', () => {
  it('runs a small sale through the whole stack, audits it and says what to try next', async () => {
    const s = await useTestServices();
    const dir = await mkdtemp(join(tmpdir(), 'fsale-demo-'));
    const html = join(dir, 'report.html');
    try {
      const demo = await runCli([...smallDemo(dir, 'demo-test'), '--html', html], s.env);
      // 4 would only say this busy machine's generator fell behind (inconclusive), not the sale.
      expect([0, 4], demo.stdout + demo.stderr).toContain(demo.code);
      expect(demo.stdout).toMatch(/A flash sale of 20 units/);
      expect(demo.stdout).toMatch(/invariants\s+OK/);

      // Each step: a command or address on one line, what it does on the next.
      const after = demo.stdout.split('What to try next:\n')[1] ?? '';
      const steps = after
        .split('\n')
        .filter((line) => /^ {2}\S/.test(line))
        .map((line) => line.trim());
      expect(steps, after).toHaveLength(5);
      const [up, reseed, storefront, watch, report] = steps as [
        string,
        string,
        string,
        string,
        string,
      ];

      // `fsale up` on the port the other steps use (no PORT here: the default), same data dir.
      const port = /--port (\d+)/.exec(up)?.[1];
      expect(port).toBe('3000');
      expect(up).toBe(`fsale up --demo-auth --port ${port} --data-dir ${dir}`);
      const origin = `http://127.0.0.1:${port}`;
      expect(storefront).toBe(`${origin}/?product=demo-test&user=you`);
      expect(watch).toBe(`fsale watch --product demo-test --url ${origin}`);
      expect(report).toBe(html);
      expect(existsSync(report)).toBe(true);

      // Every command and flag is one the CLI has.
      const commands = await cliCommands();
      for (const line of [up, reseed, watch]) {
        const words = line.split(' ').slice(1);
        const command = commands.find((c) => c.words.join(' ') === words[0]);
        expect(command, line).toBeDefined();
        for (const flag of words.filter((w) => w.startsWith('--')))
          expect(Object.keys(command?.flags ?? {}), `${line}: ${flag}`).toContain(flag.slice(2));
      }

      // The re-seed, run as printed (by a shell), puts the units the demo sold back on sale.
      expect(reseed).toMatch(/^fsale seed --product demo-test --stock 20 .*--reset$/);
      await sh('sh', ['-c', reseed.replace(/^fsale /, `'${process.execPath}' '${RUN_JS}' `)], {
        env: { PATH: process.env.PATH ?? '', ...s.env },
      });
      expect(await saleState(s, 'demo-test')).toMatchObject({ stock: '20', streamLength: 0 });
      const { rows } = await s.pool.query<{ name: string; remaining: number }>(
        "SELECT name, remaining FROM products WHERE id = 'demo-test'",
      );
      expect(rows[0]).toEqual({ name: 'Limited edition sneaker', remaining: 20 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--redis-cluster runs the same sale on a private Redis Cluster, followed and audited there', async () => {
    const s = await useTestServices();
    const dir = await mkdtemp(join(tmpdir(), 'fsale-demo-cluster-'));
    try {
      const demo = await runCli([...smallDemo(dir, 'demo-cluster'), '--redis-cluster'], s.env);
      // 4 would only say this busy machine's generator fell behind (inconclusive), not the sale.
      expect([0, 4], demo.stdout + demo.stderr).toContain(demo.code);
      expect(demo.stdout + demo.stderr).toMatch(
        /started a private Redis Cluster of 3 masters and 3 replicas at redis:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}/,
      );
      expect(demo.stdout).toMatch(/A flash sale of 20 units/);
      expect(demo.stdout).toMatch(/invariants\s+OK/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
