// The buy path's Redis client on a Redis Cluster: one RespClient (src/redis/resp-client.ts) per
// master, each command sent to the master of its key's slot, so a buy stays one round trip to
// the product's slot. The slot map comes from CLUSTER SLOTS, asked of any reachable node, and
// is refreshed every couple of seconds and at once after any sign that it is stale:
//
// - MOVED <slot> <node>: the slot lives elsewhere now (resharding, a failover). Redis did not
//   run the command, so it is resent to that node at once (at most a few redirects).
// - ASK <slot> <node>: the slot is being migrated and this key already moved: ASKING then the
//   command on that node (and ASKING before its EVAL fallback, if that node never ran the
//   script), without changing the map.
// - a node unreachable, or its connection broken: the map is refreshed (a replica may have
//   been promoted) and the command fails as an outage (503) like on a single node. A command
//   that was sent before the break is never resent: it may have run (`mayHaveRun`), and only a
//   retry with the same Idempotency-Key can tell.
// - CLUSTERDOWN / TRYAGAIN (no master for the slot yet, a multi-key operation mid-migration:
//   a buy script whose keys are not all on one side), or a redirection still coming after
//   MAX_REDIRECTS: transient, answered 503 by the caller (isServiceOutage).
import { ServiceUnavailableError } from '../domain/errors.js';
import { RedisReplyError, type Durability, type LuaScript, type RespReply } from './resp.js';
import { RespClient, type RespOptions } from './resp-client.js';
import { keySlot, SLOT_COUNT } from './slots.js';
import {
  clusterSeedError,
  isClusterNode,
  nodeAddress,
  nodeUrl,
  parseRedisTarget,
} from './target.js';

const REFRESH_EVERY_MS = 2_000;
const MIN_REFRESH_GAP_MS = 100;
const MAX_REDIRECTS = 5;

/** What the buy path needs of its Redis client, on one node or a cluster. */
export interface BuyPathRedis {
  call(args: readonly (string | number)[]): Promise<RespReply>;
  evalScript(
    script: LuaScript,
    keysThenArgs: readonly (string | number)[],
    durability?: Durability,
  ): Promise<RespReply>;
  quit(): Promise<void>;
  disconnect(): void;
}

/**
 * The buy path's client for a Redis URL: a RespCluster for seed nodes, or for one node that
 * has cluster mode on (a single seed); else a RespClient.
 */
export async function connectBuyPath(url: string, options: RespOptions): Promise<BuyPathRedis> {
  const target = parseRedisTarget(url);
  if (target.kind === 'cluster') return RespCluster.connect(target.nodes, options);
  const node = await RespClient.connect(url, options).catch((error: unknown) => {
    // The handshake's SELECT <db> is what a cluster node refuses first.
    const refused = /SELECT is not allowed in cluster mode/.test(String(error));
    throw (refused ? clusterSeedError(url) : undefined) ?? error;
  });
  const info = await node.call(['INFO', 'cluster']).catch((error: unknown) => {
    // A server that refuses INFO (an ACL) is taken for what its URL says: one node.
    if (error instanceof RedisReplyError) return '';
    node.disconnect();
    throw new ServiceUnavailableError('Redis', url, error);
  });
  if (typeof info !== 'string' || !isClusterNode(info)) return node;
  await node.quit();
  const refused = clusterSeedError(url);
  if (refused !== undefined) throw refused;
  return RespCluster.connect([url], options);
}

/** A slot without a known master: nothing was sent, the caller answers 503. */
function noMaster(slot: number): Error {
  return Object.assign(new Error(`CLUSTERDOWN no known master for slot ${slot}`), {
    code: 'ECONNRESET',
    mayHaveRun: false,
  });
}

export class RespCluster implements BuyPathRedis {
  /** Master address (`host:port`) per slot; '' while unknown. */
  private slots: string[] = new Array<string>(SLOT_COUNT).fill('');
  private readonly clients = new Map<string, Promise<RespClient>>();
  private refreshing: Promise<void> | undefined;
  private lastRefreshAt = 0;
  private ended = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly seeds: readonly string[],
    private readonly options: RespOptions,
  ) {
    this.timer = setInterval(() => this.requestRefresh(true), REFRESH_EVERY_MS);
    this.timer.unref();
  }

  /** Learns the slot map from the seed nodes; throws ServiceUnavailableError if none answers. */
  static async connect(seeds: readonly string[], options: RespOptions): Promise<RespCluster> {
    const cluster = new RespCluster(seeds, options);
    try {
      await cluster.refresh();
      const unmapped = cluster.slots.indexOf('');
      if (unmapped !== -1) throw new Error(`slot ${unmapped} has no master`);
    } catch (error) {
      cluster.disconnect();
      throw new ServiceUnavailableError('Redis', seeds.join(','), error);
    }
    return cluster;
  }

  /** Sends one command to the master of its key (`args[1]`), or to any master if it has none. */
  call(args: readonly (string | number)[]): Promise<RespReply> {
    const key = args[1];
    // A command without a key (PING) may go to any master: slot 0's.
    const slot = key === undefined ? 0 : keySlot(String(key));
    return this.route(slot, (client, asking) => client.call(args, asking));
  }

  /** Runs a script on the master of its first key (all its keys share one slot). */
  evalScript(
    script: LuaScript,
    keysThenArgs: readonly (string | number)[],
    durability?: Durability,
  ): Promise<RespReply> {
    return this.route(keySlot(String(keysThenArgs[0] ?? '')), (client, asking) =>
      client.evalScript(script, keysThenArgs, durability, asking),
    );
  }

  /** The master currently mapped to `slot` (`host:port`), for tests and diagnostics. */
  masterOf(slot: number): string {
    return this.slots[slot] ?? '';
  }

  async quit(): Promise<void> {
    this.ended = true;
    clearInterval(this.timer);
    const clients = await this.allClients();
    await Promise.all(clients.map((client) => client.quit()));
  }

  disconnect(): void {
    this.ended = true;
    clearInterval(this.timer);
    void this.allClients().then((clients) => clients.forEach((client) => client.disconnect()));
  }

  /**
   * Sends through `send` to the slot's master, following MOVED (the map is corrected) and ASK
   * (the named node, with ASKING before every command `send` writes there, the EVAL fallback
   * after a NOSCRIPT included) up to MAX_REDIRECTS times. A redirection beyond that, like
   * CLUSTERDOWN or TRYAGAIN, is rejected as a transient reply (503): Redis ran nothing.
   */
  private async route(
    slot: number,
    send: (client: RespClient, asking: boolean) => Promise<RespReply>,
    redirects = 0,
    askAt?: string,
  ): Promise<RespReply> {
    const address = askAt ?? this.slots[slot] ?? '';
    if (address === '') {
      this.requestRefresh();
      throw noMaster(slot);
    }
    let client: RespClient;
    try {
      client = await this.client(address);
    } catch (error) {
      this.requestRefresh();
      throw error;
    }
    try {
      return await send(client, askAt !== undefined);
    } catch (error) {
      if (!(error instanceof RedisReplyError)) {
        // The node went away (or stalled): its replica may be taking over.
        this.requestRefresh();
        throw error;
      }
      const redirect = /^(MOVED|ASK) (\d+) (\S+)$/.exec(error.message);
      if (redirect !== null && redirects < MAX_REDIRECTS) {
        const [, kind, movedSlot, to = ''] = redirect;
        if (kind === 'ASK') return this.route(slot, send, redirects + 1, to);
        this.slots[Number(movedSlot)] = to;
        this.requestRefresh();
        return this.route(slot, send, redirects + 1);
      }
      if (/^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK)\b/.test(error.message)) this.requestRefresh();
      throw error;
    }
  }

  private client(address: string): Promise<RespClient> {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = RespClient.connect(nodeUrl(this.seeds[0] ?? '', address), this.options);
      this.clients.set(address, client);
      // A node that cannot be reached now is asked again on the next command.
      client.catch(() => this.clients.delete(address));
    }
    return client;
  }

  private async allClients(): Promise<RespClient[]> {
    const settled = await Promise.allSettled(this.clients.values());
    return settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  private requestRefresh(periodic = false): void {
    if (this.ended || this.refreshing !== undefined) return;
    if (!periodic && Date.now() - this.lastRefreshAt < MIN_REFRESH_GAP_MS) return;
    void this.refresh().catch(() => undefined);
  }

  /** Reads CLUSTER SLOTS from the first node that answers: mapped masters first, then seeds. */
  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const candidates = [
          ...new Set([...this.slots.filter((a) => a !== ''), ...this.seeds.map(nodeAddress)]),
        ];
        let lastError: unknown = new Error('no seed nodes');
        for (const address of candidates) {
          try {
            const client = await this.client(address);
            this.apply(await client.call(['CLUSTER', 'SLOTS']));
            return;
          } catch (error) {
            lastError = error;
          }
        }
        throw lastError;
      } finally {
        this.lastRefreshAt = Date.now();
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private apply(reply: RespReply): void {
    if (!Array.isArray(reply)) throw new Error('CLUSTER SLOTS: unexpected reply');
    const slots = new Array<string>(SLOT_COUNT).fill('');
    for (const range of reply) {
      if (!Array.isArray(range)) continue;
      const [from, to, master] = range;
      if (typeof from !== 'number' || typeof to !== 'number' || !Array.isArray(master)) continue;
      const [host, port] = master;
      if (typeof host !== 'string' || typeof port !== 'number') continue;
      slots.fill(`${host === '' ? '127.0.0.1' : host}:${port}`, from, to + 1);
    }
    this.slots = slots;
    // Connections to nodes that are no master any more (a failed-over master reconnecting
    // forever, a demoted one) are dropped.
    const masters = new Set(slots);
    for (const [address, client] of this.clients) {
      if (masters.has(address)) continue;
      this.clients.delete(address);
      void client.then((c) => c.disconnect()).catch(() => undefined);
    }
  }
}
