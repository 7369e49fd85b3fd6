import { Flags } from '@oclif/core';
import type { Config } from '../config.js';
import type { StackOptions } from '../stack/stack.js';

// The flags of the commands that start the whole stack on this machine (`fsale up`, `fsale
// demo`), and the stack they describe.

export const stackFlags = {
  'api-workers': Flags.integer({
    description: 'API processes (node:cluster)',
    default: 2,
    min: 1,
    max: 64,
  }),
  'order-workers': Flags.integer({
    description: '`work orders` processes',
    default: 1,
    min: 1,
    max: 16,
  }),
  'payment-workers': Flags.integer({
    description: '`work payments` processes',
    default: 1,
    min: 1,
    max: 16,
  }),
  'gateway-speed': Flags.integer({
    description: 'divide the mock gateway latencies (1 = median 650 ms)',
    default: 1,
    min: 1,
  }),
  'gateway-port': Flags.integer({
    description: 'mock gateway port (0 picks a free one)',
    default: 3100,
    min: 0,
    max: 65535,
  }),
  'data-dir': Flags.string({
    description: 'where private redis/postgres keep their data',
    default: '.fsale',
  }),
  'redis-cluster': Flags.boolean({
    description:
      'start a private local Redis Cluster (3 masters + 3 replicas, AOF on, data under --data-dir) and run the whole stack on it, instead of REDIS_URL',
  }),
};

export interface StackFlagValues {
  'api-workers': number;
  'order-workers': number;
  'payment-workers': number;
  'gateway-speed': number;
  'gateway-port': number;
  'data-dir': string;
  'redis-cluster': boolean;
}

/** The stack the configuration and the stack flags describe; the caller adds its port and output. */
export function stackSettings(
  config: Config,
  flags: StackFlagValues,
): Omit<StackOptions, 'port' | 'demoAuth' | 'onLine' | 'onNotice'> {
  return {
    redisUrl: config.redisUrl,
    databaseUrl: config.databaseUrl,
    keyPrefix: config.keyPrefix,
    jwtSecret: config.jwtSecret,
    dataDir: flags['data-dir'],
    gatewayPort: flags['gateway-port'],
    gatewaySpeed: flags['gateway-speed'],
    apiWorkers: flags['api-workers'],
    orderWorkers: flags['order-workers'],
    paymentWorkers: flags['payment-workers'],
    redisCluster: flags['redis-cluster'],
  };
}
