// deploy/k8s: every manifest validates against the Kubernetes (and KEDA) schemas, every fsale
// command and flag in them is a real one, secrets come only from the Secret, probes use the
// admin port, and the KEDA triggers name the streams and group the order worker really uses:
// every stream of the example sale, on the Redis the ConfigMap names.
import { readFileSync, readdirSync } from 'node:fs';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { ORDER_GROUP } from '../../src/redis/keys.js';
import { runCli } from '../helpers/cli.js';
import { useTestServices } from '../helpers/services.js';

const dir = new URL('../../deploy/k8s/', import.meta.url);
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  readinessProbe?: { httpGet?: { port: string | number } };
  livenessProbe?: { httpGet?: { port: string | number } };
  ports?: { name: string; containerPort: number }[];
  resources?: { requests?: Record<string, string> };
}

const kustomization = parse(readFileSync(new URL('kustomization.yaml', dir), 'utf8')) as {
  resources: string[];
};
const manifests: Manifest[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(new URL(file, dir), 'utf8')).map((d) => d.toJSON() as Manifest),
);
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'batch/v1/Job': Job,
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

function containersOf(m: Manifest): Container[] {
  const template = (m.spec?.template ?? {}) as { spec?: { containers?: Container[] } };
  return template.spec?.containers ?? [];
}
const byKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const named = (kind: string, name: string) =>
  manifests.find((m) => m.kind === kind && m.metadata.name === name);

describe('deploy/k8s', () => {
  it('lists every manifest file of the directory in the kustomization', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it.each(manifests.map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))(
    '%s validates against its schema',
    (_name, manifest) => {
      const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
      expect(Model, `no schema for ${manifest.apiVersion} ${manifest.kind}`).toBeDefined();
      if (Model === undefined) return;
      expect(() => new Model(manifest as never).validate()).not.toThrow();
    },
  );

  it('the validators refuse what Kubernetes and KEDA would refuse', () => {
    const api = named('Deployment', 'fsale-api') as Manifest;
    const broken = { ...api, spec: { ...api.spec, replicas: 'two' } };
    expect(() => new Deployment(broken as never).validate()).toThrow();
    const scaled = named('ScaledObject', 'fsale-orders') as Manifest;
    const noTarget = { ...scaled, spec: { ...scaled.spec, scaleTargetRef: undefined } };
    expect(() => new ScaledObject(noTarget as never).validate()).toThrow();
  });

  const workloads = [...byKind('Deployment'), ...byKind('Job')].flatMap((m) =>
    containersOf(m).map((c) => [`${m.metadata.name}/${c.name}`, c] as const),
  );

  it.each(workloads)('%s runs a real fsale command with real flags', async (_name, container) => {
    const args = (container.args ?? []).map((a) => a.replace('$(POD_NAME)', 'pod'));
    const words = args.slice(0, args.findIndex((a) => a.startsWith('--')) >>> 0 || args.length);
    const help = await runCli([...words, '--help']);
    expect(help.code, help.stderr).toBe(0);
    for (const flag of args.filter((a) => a.startsWith('--'))) {
      expect(help.stdout, `${words.join(' ')} has no ${flag}`).toMatch(
        new RegExp(`${flag}[ =,\\n]`),
      );
    }
  });

  it.each(workloads)(
    '%s takes its secrets from the Secret, never a literal',
    (_name, container) => {
      expect(container.envFrom).toEqual(
        expect.arrayContaining([{ secretRef: { name: 'fsale-secrets' } }]),
      );
      for (const variable of container.env ?? []) {
        expect(variable.name).not.toMatch(/SECRET|PASSWORD|TOKEN|DATABASE_URL/);
      }
      expect(container.resources?.requests?.cpu, 'a CPU request').toBeDefined();
      const config = named('ConfigMap', 'fsale-config');
      for (const key of Object.keys(config?.data ?? {})) {
        expect(key).not.toMatch(/SECRET|PASSWORD|TOKEN|DATABASE_URL/);
      }
    },
  );

  it('the API is probed and scraped on its admin port, which no Service exposes; an HPA scales it on CPU', () => {
    const [api] = containersOf(named('Deployment', 'fsale-api') as Manifest);
    expect(api?.args).toEqual(expect.arrayContaining(['--admin-port', '9464']));
    // Behind an Ingress: the client's address from X-Forwarded-For, as compose does.
    expect(api?.args).toEqual(expect.arrayContaining(['--trust-proxy', 'uniquelocal']));
    expect(api?.readinessProbe?.httpGet?.port).toBe('admin');
    expect(api?.livenessProbe?.httpGet?.port).toBe('admin');
    expect(api?.ports?.find((p) => p.name === 'admin')?.containerPort).toBe(9464);
    const service = named('Service', 'fsale-api') as Manifest;
    const ports = (service.spec?.ports ?? []) as { targetPort: string }[];
    expect(ports.map((p) => p.targetPort)).toEqual(['http']);
    const hpa = named('HorizontalPodAutoscaler', 'fsale-api') as Manifest;
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { kind: 'Deployment', name: 'fsale-api' },
      metrics: [{ resource: { name: 'cpu' } }],
    });
  });

  it.each(['fsale-orders', 'fsale-payments', 'fsale-reconcile'])(
    '%s is probed and scraped on its admin port',
    (name) => {
      const deployment = named('Deployment', name) as Manifest;
      const [worker] = containersOf(deployment);
      expect(worker?.args).toEqual(expect.arrayContaining(['--admin-port', '9464']));
      expect(worker?.livenessProbe?.httpGet?.port).toBe('admin');
      const template = deployment.spec?.template as {
        metadata?: { annotations?: Record<string, string> };
      };
      expect(template.metadata?.annotations?.['prometheus.io/port']).toBe('9464');
    },
  );

  const config = named('ConfigMap', 'fsale-config')?.data ?? {};
  const triggers = (named('ScaledObject', 'fsale-orders')?.spec?.triggers ?? []) as {
    type: string;
    metadata: Record<string, string>;
  }[];

  it("KEDA scales the order workers on the lag of the worker's own streams and group", () => {
    const scaled = named('ScaledObject', 'fsale-orders') as Manifest;
    expect(scaled.spec).toMatchObject({ scaleTargetRef: { name: 'fsale-orders' } });
    expect(triggers.length).toBeGreaterThan(0);
    for (const trigger of triggers) {
      expect(trigger.type).toBe('redis-streams');
      expect(trigger.metadata.consumerGroup).toBe(ORDER_GROUP);
      const product = /\{p:([^}~]+)/.exec(trigger.metadata.stream ?? '')?.[1] ?? '';
      // Under the prefix the processes use, in a product's key space.
      expect(trigger.metadata.stream).toMatch(
        new RegExp(`^${config.FSALE_KEY_PREFIX}:\\{p:${product}(~[^}]+)?\\}:orders$`),
      );
      expect(Number(trigger.metadata.lagCount)).toBeGreaterThan(0);
    }
    expect(named('Deployment', 'fsale-orders')).toBeDefined();
  });

  it("KEDA reads the Redis the ConfigMap's REDIS_URL names", () => {
    const redis = new URL(config.REDIS_URL ?? '');
    for (const trigger of triggers)
      expect(trigger.metadata.address).toBe(`${redis.hostname}:${redis.port || '6379'}`);
  });

  it('KEDA watches every order stream of the example sale, whose seed command it shows', async () => {
    const text = readFileSync(new URL('keda.yaml', dir), 'utf8');
    const command = /^# Example sale: fsale (seed .+)$/m.exec(text)?.[1];
    expect(command, 'keda.yaml names its example sale').toBeDefined();
    const s = await useTestServices();
    const seeded = await runCli([...(command ?? '').split(' '), '--json'], s.env);
    expect(seeded.code, seeded.stderr).toBe(0);
    const { orderStreams } = JSON.parse(seeded.stdout) as { orderStreams: string[] };
    // The same streams under the deployment's key prefix.
    const deployed = orderStreams.map(
      (stream) => `${config.FSALE_KEY_PREFIX}${stream.slice(s.keyPrefix.length)}`,
    );
    expect(triggers.map((t) => t.metadata.stream).sort()).toEqual(deployed.sort());
  });
});

describe('the sizing comments of the manifests', () => {
  it('quote bench/capacity.json as it is: every `<path> = <value>` they cite is its value there', () => {
    const capacity = JSON.parse(
      readFileSync(new URL('../../bench/capacity.json', import.meta.url), 'utf8'),
    ) as Record<string, unknown>;
    const at = (path: string): unknown =>
      path
        .split('.')
        .reduce<unknown>(
          (node, key) =>
            typeof node === 'object' && node !== null
              ? (node as Record<string, unknown>)[key]
              : undefined,
          capacity,
        );
    let cited = 0;
    for (const file of kustomization.resources) {
      // A comment may break a citation over lines: join them first.
      const text = readFileSync(new URL(file, dir), 'utf8').replace(/\n\s*#\s*/g, ' ');
      for (const [, path = '', value = ''] of text.matchAll(
        /\b((?:costs|measured|scenario|plan)(?:\.\w+)+) = ([\d.]+)/g,
      )) {
        expect(at(path), `${file}: ${path}`).toBe(Number(value));
        cited += 1;
      }
    }
    expect(cited).toBeGreaterThanOrEqual(6);
  });
});
