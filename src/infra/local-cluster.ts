// A private Redis Cluster from the machine's redis-server binary, for tests, benchmarks and
// `fsale up --redis-cluster`: N masters with R replicas each, on free ports, each node with its
// data in a directory of its own under `dataDir`, joined with `redis-cli --cluster create`.
// Its ports are written to `dataDir/cluster.json` once it is up: started again on the same
// directory, it resumes that cluster on those ports (with its data), as a private redis-server
// resumes its AOF. Stopping it stops only the processes it started.
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { UsageError } from '../domain/errors.js';
import {
  findBinary,
  freePort,
  isFree,
  startRedisServer,
  type LocalService,
} from './local-services.js';

const run = promisify(execFile);

export interface RedisClusterOptions {
  dataDir: string;
  masters?: number;
  replicasPerMaster?: number;
  /**
   * How long a master may be unreachable before its replica is promoted (cluster-node-timeout).
   * Short in tests so a failover takes seconds; Redis's own default is 15 s.
   */
  nodeTimeoutMs?: number;
  appendOnly?: boolean;
}

export interface LocalCluster {
  nodes: LocalService[];
  /** `redis://h1:p1,h2:p2,...`: the seed-node form every fsale command accepts. */
  url: string;
  /** The node currently serving `slot` as master (asks the cluster). */
  masterOf(slot: number): Promise<LocalService>;
  /**
   * Starts a stopped (or killed) node again on its port and data directory: it rejoins the
   * cluster from its nodes.conf, as a replica of whoever took over its slots.
   */
  restart(node: LocalService): Promise<LocalService>;
  stop(): Promise<void>;
}

/** The ports of the cluster last completed in this directory, if it holds one of `count` nodes. */
async function recordedPorts(file: string, count: number): Promise<number[] | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let ports: unknown;
  try {
    ports = (JSON.parse(text) as { ports?: unknown }).ports;
  } catch {
    ports = undefined;
  }
  if (
    !Array.isArray(ports) ||
    ports.length !== count ||
    !ports.every((port) => Number.isInteger(port) && port > 0 && port < 65536)
  ) {
    throw new UsageError(
      `${file} does not describe a cluster of ${count} nodes: remove its directory to start a new cluster (its data is lost)`,
    );
  }
  return ports as number[];
}

/** A cluster node's bus listens on its port + 10000. */
const BUS_OFFSET = 10_000;

/**
 * A free port whose bus port is free too: a node whose bus port is taken exits at start
 * ("Address already in use"), which happened in CI when a random port + 10000 was another
 * process's port.
 */
async function freeNodePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const port = await freePort();
    if (await nodePortsFree(port)) return port;
  }
  throw new Error('local cluster: no free port with a free bus port (port + 10000)');
}

/** Whether a node could bind `port` and its bus port now. */
async function nodePortsFree(port: number): Promise<boolean> {
  return port + BUS_OFFSET <= 65_535 && (await isFree(port)) && (await isFree(port + BUS_OFFSET));
}

/** CLUSTER INFO of a node as a map. */
function clusterInfo(port: number): Promise<Map<string, string>> {
  return fields(port, ['CLUSTER', 'INFO']);
}

/** INFO replication of a node as a map. */
function replication(port: number): Promise<Map<string, string>> {
  return fields(port, ['INFO', 'replication']);
}

/** A `name:value` per line reply (CLUSTER INFO, INFO) of a node as a map. */
async function fields(port: number, command: [string, ...string[]]): Promise<Map<string, string>> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const text = String(await client.call(...command));
    return new Map(
      text
        .split(/\r?\n/)
        .filter((line) => line.includes(':'))
        .map((line) => line.split(':', 2) as [string, string]),
    );
  } finally {
    client.disconnect();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`local cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startRedisCluster(given: RedisClusterOptions): Promise<LocalCluster> {
  const masters = given.masters ?? 3;
  const replicas = given.replicasPerMaster ?? 1;
  const nodeTimeoutMs = given.nodeTimeoutMs ?? 2_000;
  if (masters < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const cli = findBinary('redis-cli');
  if (cli === undefined) throw new Error('redis-cli not found (apt install redis-tools)');
  const dataDir = resolve(given.dataDir);
  const nodes: LocalService[] = [];
  const startNode = (nodeDir: string, port?: number) =>
    startRedisServer({
      dataDir: nodeDir,
      ...(port === undefined ? {} : { port }),
      appendOnly: given.appendOnly ?? false,
      extraArgs: [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
        // A replica takes over however long it was cut off from its master: in a test the
        // master is killed on purpose and the replica is current.
        '--cluster-replica-validity-factor',
        '0',
      ],
    });
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  const count = masters * (1 + replicas);
  const nodeDir = (i: number) => join(dataDir, `node-${i}`);
  const record = join(dataDir, 'cluster.json');
  try {
    const ports = await recordedPorts(record, count);
    if (ports !== undefined) {
      // Resume: every node on its port, where its nodes.conf says its peers are.
      for (const port of ports) {
        if (!(await nodePortsFree(port))) {
          throw new UsageError(
            `the private Redis Cluster in ${dataDir} runs on ports ${ports.join(', ')}, and ${port} (or its bus port ${port + BUS_OFFSET}) is taken: stop what holds it, or remove ${dataDir} to start a new cluster (its data is lost)`,
          );
        }
      }
      for (const [i, port] of ports.entries()) nodes.push(await startNode(nodeDir(i), port));
    } else {
      // No cluster was ever completed here: what a failed start left is not a cluster's data.
      for (let i = 0; i < count; i += 1) await rm(nodeDir(i), { recursive: true, force: true });
      for (let i = 0; i < count; i += 1)
        nodes.push(await startNode(nodeDir(i), await freeNodePort()));
      await run(cli, [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ]);
    }
    await waitFor('every node to report cluster_state:ok', async () => {
      const infos = await Promise.all(nodes.map((node) => clusterInfo(node.port)));
      return infos.every(
        (info) =>
          info.get('cluster_state') === 'ok' &&
          info.get('cluster_known_nodes') === String(nodes.length),
      );
    });
    // Replicas that still do their first full sync would make WAIT (--durability replica)
    // and failovers meaningless for a while: ready means every replica is linked and synced.
    await waitFor('every replica to finish its first sync', async () => {
      const roles = await Promise.all(nodes.map((node) => replication(node.port)));
      const linked = roles.filter((info) => info.get('role') === 'slave');
      return (
        linked.length === masters * replicas &&
        linked.every(
          (info) =>
            info.get('master_link_status') === 'up' && info.get('master_sync_in_progress') === '0',
        )
      );
    });
    await writeFile(record, `${JSON.stringify({ ports: nodes.map((node) => node.port) })}\n`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    url: `redis://${nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`,
    async masterOf(slot) {
      for (const node of nodes) {
        const client = new Redis({ port: node.port, lazyConnect: true, maxRetriesPerRequest: 0 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          const ranges = (await client.call('CLUSTER', 'SLOTS')) as [
            number,
            number,
            [string, number],
          ][];
          const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1];
          const found = nodes.find((n) => n.port === owner);
          if (found !== undefined) return found;
        } catch {
          // a stopped node: ask the next
        } finally {
          client.disconnect();
        }
      }
      throw new Error(`no master found for slot ${slot}`);
    },
    async restart(node) {
      const index = nodes.findIndex((n) => n.port === node.port);
      if (index === -1) throw new Error(`node ${node.port} is not part of this cluster`);
      const started = await startNode(node.dataDir, node.port);
      nodes[index] = started;
      return started;
    },
    stop,
  };
}
