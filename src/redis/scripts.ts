import { readFileSync } from 'node:fs';
import type { Redis, Result } from 'ioredis';
import { luaScript, type LuaScript } from './resp.js';

// Each Lua script is one file under ./lua named `<name>-<numberOfKeys>.lua`, with a header
// documenting its KEYS and ARGV. The buy script runs on the API's hot-path client
// (src/redis/resp.ts), which calls it by SHA itself; the others are registered once per ioredis
// client with defineCommand, so ioredis calls them by SHA (EVALSHA) and falls back to EVAL
// after a SCRIPT FLUSH or restart.

const SCRIPTS = { release: 4, throttle: 2, mirror: 3 } as const satisfies Record<string, number>;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** Returns [applied 0|1, units left]. */
    release(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
    /** The sync-mode rate limit: returns [verdict 1 | 0 | -1, ms until the window resets]. */
    throttle(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
    /** Mirrors a sync-mode order into Redis: returns [applied 0|1, units left]. */
    mirror(...keysThenArgs: (string | number)[]): Result<[number, number], Context>;
  }
}

function load(file: string): string {
  return readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
}

export function defineScripts(redis: Redis): void {
  for (const [name, numberOfKeys] of Object.entries<number>(SCRIPTS)) {
    redis.defineCommand(name, { numberOfKeys, lua: load(`${name}-${numberOfKeys}.lua`) });
  }
}

/** The buy script (src/redis/lua/buy-7.lua), for RespClient.evalScript. */
export const BUY_SCRIPT: LuaScript = luaScript(load('buy-7.lua'), 7);

/** What the buy script returns: [code, replayed 0|1, orderId, extra]. */
export type BuyScriptReply = [number, number, string, number];
