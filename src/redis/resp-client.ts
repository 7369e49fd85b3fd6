import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { ServiceUnavailableError } from '../domain/errors.js';
import {
  encodeCommand,
  notReplicated,
  RedisReplyError,
  RespDecoder,
  RespProtocolError,
  waitsForReplicas,
  type Durability,
  type LuaScript,
  type RespReply,
} from './resp.js';

// The API's hot-path Redis connection: a minimal RESP2 client for the two commands every buy
// sends (EVALSHA of the buy script, GET of an idempotency record on the sold-out path).
//
// Why not ioredis here: measured on this project's 2-core machine, ioredis spends ~10 µs of
// CPU per command (Command objects, argument flattening, per-tick Pipeline objects for
// auto-pipelining, callback adapters) against ~2 µs for this client, and a buy has little
// else to spend: the whole API process budget per buy is well under 100 µs. Everything else
// (pub/sub, workers, admin commands) keeps using ioredis.
//
// Semantics match the ioredis clients of src/redis/client.ts: commands never queue while
// disconnected (they fail at once with an outage error, so the API answers 503), commands in
// flight when the connection breaks fail the same way (a buy's client retries with the same
// Idempotency-Key and gets the stored answer), and the connection is re-established in the
// background with the same back-off.

export interface RespOptions {
  /** Shown in CLIENT LIST. */
  name: string;
  /**
   * Send every command issued during one turn of the event loop in one write (default on):
   * with many buys in flight this turns a syscall per buy into one per turn.
   */
  batch?: boolean;
}

/** Connecting, TLS and the AUTH/SELECT handshake together must take less than this. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * Commands waiting and no reply for this long: Redis hangs (stopped, blocked by a runaway
 * script, a network path that drops packets without a reset). The connection is dropped so
 * buys fail fast with 503 instead of piling up until their HTTP timeout, and memory stays
 * bounded; the reconnect loop then probes Redis with its connect timeout.
 */
export const STALL_TIMEOUT_MS = 3_000;
const STALL_CHECK_MS = 500;

interface Pending {
  resolve: (reply: RespReply) => void;
  reject: (error: Error) => void;
}

/** Wait before reconnect attempt `attempt` (this client's, and ioredis's in client.ts). */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(attempt * 100, 2_000);
}

/**
 * The error a command gets when the connection is down or breaks: isServiceOutage() says 503.
 * `mayHaveRun` is true when the command had been written before the connection broke: Redis
 * may have run it (a buy script may have reserved a unit), only its reply is lost.
 */
function connectionClosed(detail: string, mayHaveRun = false): Error {
  return Object.assign(new Error(`Redis connection is closed (${detail})`), {
    code: 'ECONNRESET',
    mayHaveRun,
  });
}

export class RespClient {
  private socket: Socket | undefined;
  private ready = false;
  private ended = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Replies arrive in order: the oldest pending command gets the next one. */
  private pending: Pending[] = [];
  private head = 0;
  /** Pending commands before this index were written to the socket; later ones wait in `output`. */
  private written = 0;
  private output = '';
  private flushScheduled = false;
  private readonly decoder = new RespDecoder();
  /** When Redis last answered, or when a command was sent with none outstanding. */
  private lastProgressAt = 0;
  private readonly stallTimer: NodeJS.Timeout;
  private readonly url: URL;
  private readonly batch: boolean;

  private constructor(
    url: string,
    private readonly options: RespOptions,
  ) {
    this.url = new URL(url);
    this.batch = options.batch ?? true;
    this.stallTimer = setInterval(() => this.checkStall(), STALL_CHECK_MS);
    this.stallTimer.unref();
  }

  /** Connects, authenticates and selects the URL's database; throws ServiceUnavailableError. */
  static async connect(url: string, options: RespOptions): Promise<RespClient> {
    const client = new RespClient(url, options);
    try {
      await client.open();
    } catch (error) {
      client.disconnect();
      throw new ServiceUnavailableError('Redis', url, error);
    }
    return client;
  }

  /**
   * Sends one command; resolves with its reply, rejects with RedisReplyError or an outage.
   * `asking`: ASKING goes just before it on the connection (a cluster's ASK redirection: the
   * node serves the slot it is importing for the next command only).
   */
  call(args: readonly (string | number)[], asking = false): Promise<RespReply> {
    if (!this.ready) return Promise.reject(connectionClosed('not connected'));
    // ASKING answers OK; if the connection breaks instead, the command after it fails too.
    if (asking) void this.send(encodeCommand(['ASKING'])).catch(() => undefined);
    return this.send(encodeCommand(args));
  }

  /**
   * Runs a script by SHA; after a Redis restart or SCRIPT FLUSH, once more by source. With
   * `durability`, WAIT follows the script on the same connection in the same write, and the
   * reply counts only once `durability.replicas` replicas have the script's writes: fewer
   * within `durability.timeoutMs` rejects with a NOREPLICAS error that `mayHaveRun` (the
   * script ran on the master; a failover now could lose what it did). `asking` (see call)
   * applies to the EVAL fallback too: a node importing a slot has never run the script.
   */
  async evalScript(
    script: LuaScript,
    keysThenArgs: readonly (string | number)[],
    durability?: Durability,
    asking = false,
  ): Promise<RespReply> {
    try {
      return await this.runDurably(
        ['EVALSHA', script.sha, script.numberOfKeys, ...keysThenArgs],
        durability,
        asking,
      );
    } catch (error) {
      if (!(error instanceof RedisReplyError) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.runDurably(
        ['EVAL', script.source, script.numberOfKeys, ...keysThenArgs],
        durability,
        asking,
      );
    }
  }

  private async runDurably(
    args: readonly (string | number)[],
    durability: Durability | undefined,
    asking: boolean,
  ): Promise<RespReply> {
    if (!waitsForReplicas(durability)) return this.call(args, asking);
    const reply = this.call(args, asking);
    const acked = this.call(['WAIT', durability.replicas, durability.timeoutMs]);
    // A script error (NOSCRIPT) must win over the WAIT that followed it.
    const result = await reply.catch(async (error: unknown) => {
      await acked.catch(() => undefined);
      throw error;
    });
    const replicas = await acked;
    if (typeof replicas !== 'number' || replicas < durability.replicas) {
      throw Object.assign(notReplicated(replicas, durability), { mayHaveRun: true });
    }
    return result;
  }

  /** Waits for the replies of commands already sent, then closes; no reconnect after this. */
  async quit(): Promise<void> {
    const socket = this.socket;
    if (this.ended || socket === undefined || !this.ready) {
      this.disconnect();
      return;
    }
    // The stall check keeps running: a Redis that hangs now cannot hang the shutdown.
    this.ended = true;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await this.send(encodeCommand(['QUIT'])).catch(() => undefined);
    socket.end();
    await closed;
  }

  /** Closes at once: commands in flight fail with an outage error. */
  disconnect(): void {
    this.ended = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.stallTimer);
    this.socket?.destroy();
  }

  private send(command: string): Promise<RespReply> {
    return new Promise((resolve, reject) => {
      if (this.head === this.pending.length) this.lastProgressAt = Date.now();
      this.pending.push({ resolve, reject });
      if (!this.batch) {
        this.socket?.write(command);
        this.written = this.pending.length;
        return;
      }
      this.output += command;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.output === '') return;
    const output = this.output;
    this.output = '';
    this.socket?.write(output);
    this.written = this.pending.length;
  };

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const port = Number(this.url.port || 6379);
      const host = this.url.hostname || '127.0.0.1';
      const socket =
        this.url.protocol === 'rediss:'
          ? // SNI carries host names only; the certificate is checked against `host` either way.
            connectTls({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}) })
          : connectTcp({ host, port });
      this.socket = socket;
      socket.setNoDelay(true);
      const timeout = setTimeout(
        () => socket.destroy(new Error('connection timeout')),
        CONNECT_TIMEOUT_MS,
      );
      let opened = false;
      socket.once(this.url.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
        // The timeout covers the handshake too: a server that accepts but never answers
        // (stopped, or still loading its data) must not hang the reconnect loop.
        void this.handshake().then(
          () => {
            clearTimeout(timeout);
            opened = true;
            this.ready = true;
            this.attempts = 0;
            resolve();
          },
          (error: unknown) => socket.destroy(error as Error),
        );
      });
      socket.on('data', (chunk: Buffer) => this.receive(chunk));
      let failure: Error | undefined;
      socket.on('error', (error: Error) => {
        failure ??= error;
      });
      socket.once('close', (hadError) => {
        clearTimeout(timeout);
        this.ready = false;
        this.decoder.reset();
        this.output = '';
        this.failPending(failure?.message ?? (hadError ? 'connection lost' : 'closed by server'));
        if (this.ended) clearInterval(this.stallTimer);
        if (!opened) reject(failure ?? new Error(`connection to ${host}:${port} closed`));
        else this.scheduleReconnect();
      });
    });
  }

  /** AUTH, SELECT and CLIENT SETNAME, written before any other command. */
  private async handshake(): Promise<void> {
    const steps: string[][] = [];
    const password = decodeURIComponent(this.url.password);
    const username = decodeURIComponent(this.url.username);
    if (password !== '')
      steps.push(username !== '' ? ['AUTH', username, password] : ['AUTH', password]);
    const db = Number(this.url.pathname.slice(1) || 0);
    if (db !== 0) steps.push(['SELECT', String(db)]);
    steps.push(['CLIENT', 'SETNAME', this.options.name]);
    await Promise.all(steps.map((step) => this.send(encodeCommand(step))));
  }

  private checkStall(): void {
    const waiting = this.ready && this.head < this.pending.length;
    if (waiting && Date.now() - this.lastProgressAt >= STALL_TIMEOUT_MS) {
      this.socket?.destroy(new Error(`no reply from Redis for ${STALL_TIMEOUT_MS} ms`));
    }
  }

  private scheduleReconnect(): void {
    if (this.ended) return;
    this.attempts += 1;
    this.reconnectTimer = setTimeout(
      () => void this.open().catch(() => this.scheduleReconnect()),
      reconnectDelayMs(this.attempts),
    );
  }

  private failPending(detail: string): void {
    const { pending, head, written } = this;
    this.pending = [];
    this.head = 0;
    this.written = 0;
    const sent = connectionClosed(detail, true);
    const unsent = connectionClosed(detail, false);
    for (let i = head; i < pending.length; i += 1) pending[i]?.reject(i < written ? sent : unsent);
  }

  private receive(chunk: Buffer): void {
    this.lastProgressAt = Date.now();
    try {
      this.decoder.decode(chunk, this.settle);
    } catch (error) {
      if (!(error instanceof RespProtocolError)) throw error;
      this.socket?.destroy(error);
    }
  }

  /** Hands a reply to the oldest pending command; false when nobody asked for one. */
  private readonly settle = (reply: RespReply | RedisReplyError): boolean => {
    const waiter = this.pending[this.head];
    if (waiter === undefined) {
      // A reply nobody asked for: the stream is out of step; start over on a new connection.
      this.socket?.destroy(new Error('unexpected reply from Redis'));
      return false;
    }
    this.head += 1;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
      this.written = 0;
    } else if (this.head >= 1024) {
      this.pending = this.pending.slice(this.head);
      this.written = Math.max(0, this.written - this.head);
      this.head = 0;
    }
    if (reply instanceof RedisReplyError) waiter.reject(reply);
    else waiter.resolve(reply);
    return true;
  };
}
