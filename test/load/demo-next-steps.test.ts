// The demo's "what to try next": commands a shell reads back as written, the addresses of the
// stack `fsale up` would run, and, when the demo ran on private servers, how to reach the
// ones `fsale up` starts instead of flags that would point at nothing.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { renderNextSteps, shellWord, type DemoNextSteps } from '../../src/load/demo-summary.js';

const next: DemoNextSteps = {
  product: 'demo',
  seedArgs: ['--product', 'demo', '--stock', '1000', '--name', "Bob's shoe", '--reset'],
  upArgs: ['--port', '8080', '--data-dir', '/tmp/a dir'],
  port: 8080,
  privateServices: false,
  html: '/tmp/r.html',
};

/** The words a shell splits `line` into. */
function shellWords(line: string): string[] {
  const out = execFileSync('sh', ['-c', `for w in ${line}; do printf '%s\\n' "$w"; done`]);
  return out.toString().trimEnd().split('\n');
}

describe("the demo's next steps", () => {
  it('quotes what a shell would split or expand, and nothing else', () => {
    for (const word of ['plain', '--flag', "it's", 'a b', '$HOME', '*', 'x;y', ''])
      expect(shellWords(`x ${shellWord(word)}`).slice(1), word).toEqual(word === '' ? [] : [word]);
    expect(shellWord('/tmp/r.html')).toBe('/tmp/r.html');
  });

  it("uses the stack's port everywhere and repeats the flags `up` and `seed` need", () => {
    const lines = renderNextSteps(next).split('\n');
    expect(lines).toContain("  fsale up --demo-auth --port 8080 --data-dir '/tmp/a dir'");
    expect(lines).toContain(
      "  fsale seed --product demo --stock 1000 --name 'Bob'\\''s shoe' --reset",
    );
    expect(lines).toContain('  http://127.0.0.1:8080/?product=demo&user=you');
    expect(lines).toContain('  fsale watch --product demo --url http://127.0.0.1:8080');
    expect(lines).toContain('  /tmp/r.html');
  });

  it('after private servers, says the re-seed needs the URLs `fsale up` prints', () => {
    const text = renderNextSteps({ ...next, privateServices: true });
    expect(text).toMatch(/with REDIS_URL and DATABASE_URL set to the private servers/);
    expect(renderNextSteps(next)).not.toMatch(/REDIS_URL/);
    // Without a report, how to get one.
    expect(renderNextSteps({ ...next, html: undefined })).toContain(
      '  fsale demo --html report.html',
    );
  });
});
