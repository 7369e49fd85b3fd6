// What a Redis URL names: one node (`redis://host:port/db`), or a Redis Cluster named by seed
// nodes (`redis://host1:port1,host2:port2`, any number of them, same credentials and scheme
// for all). The seed list only has to reach one live node: clients learn the whole cluster
// (CLUSTER SLOTS) from it.

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
  if (path !== '' && path !== '/' && path !== '/0') {
    throw new Error(`a Redis Cluster has only database 0, got ${JSON.stringify(path)}`);
  }
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
