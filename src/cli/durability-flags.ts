// `--durability` and `--durability-timeout`: one definition for the commands whose Redis writes
// a failover must not lose (`serve` for buys, `reconcile` for moves between stock shards).
import { Flags } from '@oclif/core';
import type { Durability } from '../redis/resp.js';
import { DEFAULT_DURABILITY_TIMEOUT_MS, DURABILITY_MODES } from '../sale/buy.js';
import { durationFlag } from './duration-flag.js';

/** The flags, with `description` saying what waits, and `timeout` for how long. */
export function durabilityFlags(description: string, timeout: string) {
  return {
    durability: Flags.option({
      options: DURABILITY_MODES,
      description,
      default: 'none' as const,
    })(),
    'durability-timeout': durationFlag({
      description: timeout,
      default: DEFAULT_DURABILITY_TIMEOUT_MS,
      min: 1,
    }),
  };
}

/** What the flags ask for: one replica within the timeout, or nothing (`none`). */
export function durabilityOf(flags: {
  durability: (typeof DURABILITY_MODES)[number];
  'durability-timeout': number;
}): Durability | undefined {
  return flags.durability === 'replica'
    ? { replicas: 1, timeoutMs: flags['durability-timeout'] }
    : undefined;
}
