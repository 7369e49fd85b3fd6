// What a Redis URL names: one node (`redis://host:port/db`), or a Redis Cluster named by seed
// nodes (`redis://host1:port1,host2:port2`, any number of them, same credentials and scheme
// for all). The seed list only has to reach one live node: clients learn the whole cluster
// (CLUSTER SLOTS) from it. A one-node URL that turns out to name a cluster node (`redis://h:7000`)
// is a cluster seed too: both clients ask the node at connect (INFO cluster, isClusterNode).

import { redactUrl, UsageError } from '../domain/errors.js';

export type RedisTarget = { kind: 'node'; url: string } | { kind: 'cluster'; nodes: string[] };

const FORM = /^(rediss?):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?$/;

/** Parses and validates a Redis URL; throws an Error whose message says what is wrong. */
export function parseRedisTarget(url: string): RedisTarget {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`not a valid URL: ${JSON.stringify(url)}`);
  }
  const match = FORM.exec(url);
  if (match === null) {
    throw new Error(`expected a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
  }
  const [, scheme, auth, hosts = '', path = ''] = match;
  const list = hosts.split(',');
  if (list.length === 1) {
    try {
      const parsed = new URL(url);
      if (parsed.hostname === '') throw new Error('no host');
    } catch {
      throw new Error(`not a valid Redis URL: ${JSON.stringify(url)}`);
    }
    return { kind: 'node', url };
  }
  if (!isDatabaseZero(path)) throw new Error(onlyDatabaseZero(path));
  const nodes = list.map((host) => {
    const node = `${scheme ?? 'redis'}://${auth === undefined ? '' : `${auth}@`}${host}`;
    let parsed: URL;
    try {
      parsed = new URL(node);
    } catch {
      throw new Error(`not a valid cluster seed node: ${JSON.stringify(host)}`);
    }
    if (parsed.hostname === '' || parsed.port === '') {
      throw new Error(`a cluster seed node needs host:port, got ${JSON.stringify(host)}`);
    }
    return node;
  });
  return { kind: 'cluster', nodes };
}

/** Host and port of a node URL. */
export function nodeHostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || '6379') };
}

/** `host:port` of a node URL, the name a cluster gives its nodes. */
export function nodeAddress(url: string): string {
  const { host, port } = nodeHostPort(url);
  return `${host}:${port}`;
}

/** The URL of node `address` with the scheme and credentials of `like`. */
export function nodeUrl(like: string, address: string): string {
  const parsed = new URL(like);
  const auth =
    parsed.username !== '' || parsed.password !== ''
      ? `${parsed.username}${parsed.password === '' ? '' : `:${parsed.password}`}@`
      : '';
  return `${parsed.protocol}//${auth}${address}`;
}

/** Whether an `INFO cluster` reply comes from a node with cluster mode on. */
export function isClusterNode(infoCluster: string): boolean {
  return /^cluster_enabled:1\b/m.test(infoCluster);
}

/**
 * The one-line error for a one-node URL with another database than 0 (`redis://h:7000/3`)
 * whose node turned out to have cluster mode on; undefined when the URL is fine as a seed.
 */
export function clusterSeedError(url: string): UsageError | undefined {
  const { pathname } = new URL(url);
  if (isDatabaseZero(pathname)) return undefined;
  return new UsageError(`${redactUrl(url)} is a Redis Cluster node: ${onlyDatabaseZero(pathname)}`);
}

function isDatabaseZero(path: string): boolean {
  return path === '' || path === '/' || path === '/0';
}

function onlyDatabaseZero(path: string): string {
  return `a Redis Cluster has only database 0, got ${JSON.stringify(path)}`;
}
