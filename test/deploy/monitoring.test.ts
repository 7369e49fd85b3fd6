// The monitoring profile: every metric the Grafana dashboard queries is one a running stack
// exports (each process started as compose starts it, with its admin port, and scraped), and
// deploy/prometheus.yml scrapes exactly the compose services that serve metrics, on their ports.
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli, type CliProcess } from '../helpers/process.js';
import { buy, freshKey, seed, tokenFor } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';
import { startApiProcess, stopProcess } from '../helpers/stack.js';
import { until } from '../helpers/wait.js';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

interface Panel {
  title: string;
  datasource?: { uid?: string };
  targets?: { expr: string; datasource?: { uid?: string } }[];
}
const dashboard = JSON.parse(read('deploy/grafana/fsale.json')) as { uid: string; panels: Panel[] };

interface Service {
  image?: string;
  command?: string[];
  ports?: string[];
  profiles?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
};

/** The fsale metric names a PromQL expression reads (label names and functions are not fsale_). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bfsale_[a-z0-9_]+/g)].map((m) => m[0]);
}

/** The metric names of a Prometheus text exposition that have at least one sample. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    names.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '');
  }
  return names;
}

function flagValue(command: string[], flag: string): string | undefined {
  const at = command.indexOf(flag);
  return at === -1 ? undefined : command[at + 1];
}

const QUERIED = [
  ...new Set(
    dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))),
  ),
];

describe('the Grafana dashboard', () => {
  it('has the panels operators asked for, each with a query, all on the provisioned data source', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase());
    for (const wanted of [
      'buys/s by outcome',
      'buy latency p50 / p99',
      'stock remaining',
      'order stream lag',
      'orders persisted/s',
      'payments/s',
      'sse clients',
      'event-loop delay p99',
      'order batch size p50 / p99',
      'order batch time p50 / p99',
      'charge latency seen by the payment workers p99',
      'payment leases/s',
      'reconcile: orders deferred',
    ])
      expect(titles).toContain(wanted);
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as {
      datasources: { uid: string; type: string; url: string }[];
    };
    const uid = datasources.datasources[0]?.uid;
    expect(datasources.datasources[0]).toMatchObject({
      type: 'prometheus',
      url: 'http://prometheus:9090',
    });
    for (const panel of dashboard.panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe(uid);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid, panel.title).toBe(uid);
        expect(metricNames(target.expr), target.expr).not.toEqual([]);
      }
    }
  });

  describe('against a running stack', () => {
    const procs: CliProcess[] = [];
    const scrapes = new Map<string, string>();
    /** Units given back by declined charges before the scrape. */
    let released = 0;
    afterAll(async () => {
      await Promise.all(procs.map((p) => stopProcess(p)));
    });

    beforeAll(async () => {
      const s = await useTestServices();
      await seed(s, { productId: 'mon', stock: 100 });
      const adminOf = (proc: CliProcess) =>
        proc.waitFor(/admin(?: listener)?(?: \(metrics, readiness\))? on (http:\/\/[\d.:]+)/);
      const gateway = startCli(
        ['gateway', '--port', '0', '--seed', '3', '--speed', '100', '--admin-port', '0'],
        s.env,
      );
      procs.push(gateway);
      const gatewayUrl = await gateway.waitFor(/gateway listening on (http:\/\/[\d.:]+)/);
      const env = { ...s.env, FSALE_GATEWAY_URL: gatewayUrl };
      const api = await startApiProcess(env, [
        '--admin-port',
        '0',
        '--max-event-loop-delay',
        '60s',
      ]);
      procs.push(api);
      const workers = [
        startCli(['work', 'orders', '--admin-port', '0', '--block', '100ms'], env),
        startCli(['work', 'payments', '--admin-port', '0'], env),
        startCli(['reconcile', '--interval', '200ms', '--admin-port', '0'], env),
      ];
      procs.push(...workers);
      const admins = {
        api: await adminOf(api),
        gateway: await adminOf(gateway),
        orders: await adminOf(workers[0] as CliProcess),
        payments: await adminOf(workers[1] as CliProcess),
        reconcile: await adminOf(workers[2] as CliProcess),
      };

      // Traffic, so that the labelled series (buy outcomes, latency buckets, charges) exist.
      for (let i = 0; i < 10; i++) {
        const answer = await buy(
          { url: api.url },
          { token: tokenFor(`m${i}`), productId: 'mon', key: freshKey() },
        );
        expect(answer.status).toBe(202);
      }
      const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();
      await until('the gateway to have timed a charge', async () =>
        exported(await scrape(admins.gateway)).has('fsale_gateway_charge_duration_seconds_bucket'),
      );
      await until('the orders to be persisted', async () =>
        (await scrape(admins.orders)).includes('fsale_orders_persisted_total 10'),
      );
      // Settled first, so the stock does not move while it is scraped: a decline gives its unit
      // back.
      await until('every order charged or failed', async () => {
        const { rows } = await s.pool.query<{ open: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE status IN ('pending', 'needs_reconciliation'))::int AS open,
                  count(*) FILTER (WHERE status = 'payment_failed')::int AS failed
             FROM orders WHERE product_id = 'mon'`,
        );
        released = rows[0]?.failed ?? 0;
        return rows[0]?.open === 0;
      });
      for (const [name, url] of Object.entries(admins)) scrapes.set(name, await scrape(url));
    });

    it.each(QUERIED)('%s is exported by a process', (name) => {
      const by = [...scrapes].filter(([, text]) => exported(text).has(name)).map(([p]) => p);
      expect(by, `${name}: no process exports it`).not.toEqual([]);
    });

    it('reports what the stack did: the stock the buys took, and the orders the API accepted', () => {
      const api = scrapes.get('api') ?? '';
      expect(api).toMatch(
        new RegExp(`^fsale_stock_remaining\\{product="mon"\\} ${90 + released}$`, 'm'),
      );
      expect(api).toMatch(/^fsale_buy_outcomes_total\{outcome="accepted"\} 10$/m);
      expect(api).toMatch(/^fsale_sse_clients\{kind="stock"\} 0$/m);
    });
  });
});

describe('deploy/prometheus.yml', () => {
  interface ScrapeConfig {
    job_name: string;
    metrics_path?: string;
    dns_sd_configs?: { names: string[]; type: string; port: number }[];
    static_configs?: { targets: string[] }[];
  }
  const config = parse(read('deploy/prometheus.yml')) as {
    global: Record<string, string>;
    scrape_configs: ScrapeConfig[];
  };
  const DURATION = /^\d+(ms|s|m|h)$/;

  it('is a well-formed Prometheus configuration', () => {
    expect(Object.keys(config).sort()).toEqual(['global', 'scrape_configs']);
    for (const value of Object.values(config.global)) expect(value).toMatch(DURATION);
    const jobs = config.scrape_configs.map((c) => c.job_name);
    expect(new Set(jobs).size).toBe(jobs.length);
    for (const job of config.scrape_configs) {
      expect(
        Object.keys(job).every((k) =>
          ['job_name', 'metrics_path', 'dns_sd_configs', 'static_configs'].includes(k),
        ),
        job.job_name,
      ).toBe(true);
      for (const sd of job.dns_sd_configs ?? []) {
        expect(sd.type).toBe('A');
        expect(Number.isInteger(sd.port) && sd.port > 0 && sd.port < 65536).toBe(true);
        expect(sd.names.length).toBeGreaterThan(0);
      }
    }
  });

  it('scrapes every compose service that serves metrics, on its admin port, and only those', () => {
    const targets = config.scrape_configs.flatMap((job) =>
      (job.dns_sd_configs ?? []).flatMap((sd) => sd.names.map((name) => `${name}:${sd.port}`)),
    );
    const withMetrics = Object.entries(compose.services).filter(
      ([, service]) =>
        service.profiles === undefined &&
        flagValue(service.command ?? [], '--admin-port') !== undefined,
    );
    expect(withMetrics.map(([name]) => name).sort()).toEqual([
      'api',
      'gateway',
      'orders',
      'payments',
      'reconcile',
    ]);
    expect(targets.sort()).toEqual(
      withMetrics
        .map(([name, s]) => `${name}:${flagValue(s.command ?? [], '--admin-port')}`)
        .sort(),
    );
    for (const [name, service] of withMetrics) {
      // Reachable by Prometheus on the compose network, published to no one.
      expect(flagValue(service.command ?? [], '--admin-host'), name).toBe('0.0.0.0');
      expect(service.ports, name).toBeUndefined();
    }
  });

  it('runs in the monitoring profile with Grafana, both on loopback, Grafana provisioned from files that exist', () => {
    const { prometheus, grafana } = compose.services;
    expect(prometheus?.profiles).toEqual(['monitoring']);
    expect(grafana?.profiles).toEqual(['monitoring']);
    for (const service of [prometheus, grafana]) {
      expect(service?.image).toMatch(/^[a-z/]+:v?\d+\.\d+\.\d+$/);
      for (const port of service?.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
    }
    expect(prometheus?.volumes).toContain(
      './deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro',
    );
    const mounts = (grafana?.volumes ?? []).filter((v) => v.startsWith('./'));
    for (const mount of mounts)
      expect(existsSync(new URL(mount.split(':')[0] ?? '', root)), mount).toBe(true);
    const provider = parse(read('deploy/grafana/provisioning/dashboards/fsale.yml')) as {
      providers: { options: { path: string } }[];
    };
    const dashboardMount = mounts.find((m) => m.startsWith('./deploy/grafana/fsale.json:'));
    expect(dashboardMount?.split(':')[1]).toBe(`${provider.providers[0]?.options.path}/fsale.json`);
    // The admin password is required from the operator, never defaulted.
    expect(grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD).toMatch(
      /^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/,
    );
  });
});
