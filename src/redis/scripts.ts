import { readFileSync } from 'node:fs';
import type { ChainableCommander, Result } from 'ioredis';
import { execReplicated, type Redis } from './client.js';
import { idempotencyKey, rateLimitKey, stockMessagePrefix, type ProductKeys } from './keys.js';
import type { BuyPathRedis } from './resp-cluster.js';
import {
  luaScript,
  waitsForReplicas,
  type Durability,
  type LuaScript,
  type RespReply,
} from './resp.js';

// Each Lua script is one file under ./lua named `<name>-<numberOfKeys>.lua`, with a header
// documenting its KEYS and ARGV. The buy script runs on the API's hot-path client
// (src/redis/resp-client.ts), which calls it by SHA itself; the others are registered once per ioredis
// client with defineCommand, so ioredis calls them by SHA (EVALSHA) and falls back to EVAL
// after a SCRIPT FLUSH or restart.
//
// This file is the one place that knows each script's KEYS and ARGV order: callers pass named
// arguments and get typed replies.

const SCRIPTS = {
  release: 5,
  throttle: 2,
  mirror: 3,
  lend: 3,
  receive: 3,
} as const satisfies Record<string, number>;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** Returns [applied 0|1, units left]. */
    release(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
    /** The sync-mode rate limit: returns [verdict 1 | 0 | -1, ms until the window resets]. */
    throttle(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
    /** Mirrors a sync-mode order into Redis: returns [applied 0|1, units left]. */
    mirror(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
    /** Returns [units lent, units left, transfers in transit, moves]. */
    lend(...keysThenArgs: (string | number)[]): Result<[number, number, number, number], Context>;
    /** Returns [applied 0|1, units left]. */
    receive(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
  }
}

function load(file: string): string {
  return readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
}

type ScriptName = keyof typeof SCRIPTS;

const SOURCES = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, numberOfKeys]) => [
    name,
    load(`${name}-${numberOfKeys}.lua`),
  ]),
) as Record<ScriptName, string>;

export function defineScripts(redis: Redis): void {
  for (const [name, numberOfKeys] of Object.entries<number>(SCRIPTS)) {
    redis.defineCommand(name, { numberOfKeys, lua: SOURCES[name as ScriptName] });
  }
}

/**
 * Runs script `name`; with `durability`, WAIT follows it in the same write (execReplicated), by
 * EVAL of its source rather than by SHA: ioredis answers a NOSCRIPT by sending the script again
 * on its own, after the WAIT, which would then vouch for nothing.
 */
async function runScript(
  redis: Redis,
  name: ScriptName,
  keysThenArgs: (string | number)[],
  durability: Durability | undefined,
): Promise<number[]> {
  const reply =
    durability === undefined
      ? await redis[name](...keysThenArgs)
      : await execReplicated(
          redis.pipeline().call('EVAL', SOURCES[name], SCRIPTS[name], ...keysThenArgs),
          durability,
        );
  if (!Array.isArray(reply) || !reply.every((n) => typeof n === 'number')) {
    throw new Error(`unexpected reply from the ${name} script: ${JSON.stringify(reply)}`);
  }
  return reply;
}

/** The buy script (src/redis/lua/buy-7.lua), run on the API's own RespClient. */
const BUY_SCRIPT: LuaScript = luaScript(load('buy-7.lua'), 7);

export interface BuyScriptArgs {
  /**
   * The order the request names (src/domain/order-id.ts): used if the buy is accepted, and
   * replayed if the owner index already has it (its record lost).
   */
  orderId: string;
  userId: string;
  qty: number;
  idempotencyKey: string;
  /** Same key with another fingerprint is a mismatch. */
  fingerprint: string;
  /** Requests per user per window; 0 disables the limit. */
  rateLimit: number;
  rateWindowMs: number;
  /** Replicas that must have the script's writes before its reply counts (WAIT). */
  durability?: Durability | undefined;
}

export interface BuyScriptReply {
  /** A BuyCode (src/sale/buy.ts). */
  code: number;
  replayed: boolean;
  orderId: string;
  /** Units left after an accept; ms until the window resets when rate limited; else -1. */
  extra: number;
}

function buyScriptReply(reply: RespReply): BuyScriptReply {
  if (
    Array.isArray(reply) &&
    reply.length === 4 &&
    typeof reply[0] === 'number' &&
    typeof reply[1] === 'number' &&
    typeof reply[2] === 'string' &&
    typeof reply[3] === 'number'
  ) {
    return { code: reply[0], replayed: reply[1] === 1, orderId: reply[2], extra: reply[3] };
  }
  throw new Error(`unexpected reply from the buy script: ${JSON.stringify(reply)}`);
}

/** One buy in one round trip: see the header of buy-7.lua. */
export async function runBuyScript(
  redis: BuyPathRedis,
  keys: ProductKeys,
  args: BuyScriptArgs,
): Promise<BuyScriptReply> {
  const reply = await redis.evalScript(
    BUY_SCRIPT,
    [
      keys.stock,
      keys.sale,
      keys.bought,
      keys.orders,
      idempotencyKey(keys, args.userId, args.idempotencyKey),
      rateLimitKey(keys, args.userId),
      keys.owners,
      args.orderId,
      args.userId,
      args.qty,
      args.idempotencyKey,
      args.fingerprint,
      keys.stockChannel,
      args.rateLimit,
      args.rateWindowMs,
      keys.shards,
      stockMessagePrefix(keys),
      waitsForReplicas(args.durability) ? 1 : 0,
    ],
    args.durability,
  );
  return buyScriptReply(reply);
}

/** A unit (or several) one order holds: what the release and mirror scripts act on. */
export interface OrderUnits {
  orderId: string;
  userId: string;
  qty: number;
}

function releaseArgs(keys: ProductKeys, order: OrderUnits): (string | number)[] {
  return [
    keys.stock,
    keys.bought,
    keys.released,
    keys.sale,
    keys.moves,
    order.orderId,
    order.userId,
    order.qty,
    keys.stockChannel,
    stockMessagePrefix(keys),
  ];
}

/** Gives the order's units back, once per order (release-4.lua). True if this call applied it. */
export async function releaseUnits(
  redis: Redis,
  keys: ProductKeys,
  order: OrderUnits,
): Promise<boolean> {
  const [applied] = await redis.release(...releaseArgs(keys, order));
  return applied === 1;
}

/** The same release, queued on a MULTI or pipeline. */
export function queueReleaseUnits(
  multi: ChainableCommander,
  keys: ProductKeys,
  order: OrderUnits,
): void {
  multi.release(...releaseArgs(keys, order));
}

/** Mirrors a committed sync-mode order into Redis (mirror-3.lua). True if this call applied it. */
export async function mirrorUnits(
  redis: Redis,
  keys: ProductKeys,
  order: OrderUnits,
): Promise<boolean> {
  const [applied] = await redis.mirror(
    keys.stock,
    keys.bought,
    keys.owners,
    order.orderId,
    order.userId,
    order.qty,
    keys.stockChannel,
  );
  return applied === 1;
}

/** What one shard answered a lend (lend-3.lua): also its state when nothing was lent. */
export interface LendReply {
  lent: number;
  left: number;
  /** Transfers from this shard not yet known to be received. */
  inTransit: number;
  /** Bumped by every change that adds units to the shard or lends them. */
  moves: number;
}

/**
 * Lends up to `need` units (at least that, if it has them) from `from` to `to`; 0 reads only.
 * With `durability`, a lend that wrote counts only once a replica has it (see runScript).
 */
export async function lendUnits(
  redis: Redis,
  from: ProductKeys,
  to: ProductKeys,
  transferId: string,
  need: number,
  durability?: Durability,
): Promise<LendReply> {
  const [lent = 0, left = 0, inTransit = 0, moves = 0] = await runScript(
    redis,
    'lend',
    [
      from.stock,
      from.transit,
      from.moves,
      transferId,
      to.tag,
      need,
      from.shards,
      from.stockChannel,
      stockMessagePrefix(from),
    ],
    need > 0 ? durability : undefined,
  );
  return { lent, left, inTransit, moves };
}

/** Receives a transfer's units at `to`, once per transfer (receive-3.lua); see lendUnits. */
export async function receiveUnits(
  redis: Redis,
  to: ProductKeys,
  transferId: string,
  units: number,
  durability?: Durability,
): Promise<boolean> {
  const [applied] = await runScript(
    redis,
    'receive',
    [to.stock, to.received, to.moves, transferId, units, to.stockChannel, stockMessagePrefix(to)],
    durability,
  );
  return applied === 1;
}

export interface ThrottleVerdict {
  /** 1 counted and allowed, 0 counted and over the limit, -1 not counted (no such product). */
  verdict: number;
  retryAfterMs: number;
}

/** Counts one buy attempt of `userId` against the sync-mode rate limit (throttle-2.lua). */
export async function countBuyAttempt(
  redis: Redis,
  keys: ProductKeys,
  userId: string,
  limit: { rateLimit: number; rateWindowMs: number },
): Promise<ThrottleVerdict> {
  const [verdict, retryAfterMs] = await redis.throttle(
    keys.sale,
    rateLimitKey(keys, userId),
    limit.rateLimit,
    limit.rateWindowMs,
    1,
  );
  return { verdict, retryAfterMs };
}

/** Gives back an attempt that turned out not to be one (a replay, an unknown product). */
export async function refundBuyAttempt(
  redis: Redis,
  keys: ProductKeys,
  userId: string,
): Promise<void> {
  await redis.throttle(keys.sale, rateLimitKey(keys, userId), 0, 0, -1);
}
