// Shared by the fault scenarios 6, 7, 10 and 11: bounded waits, the audit as an assertion, API
// child processes, hand-made JWTs and memory readings of a child process.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { runAudit, type AuditReport } from '../../src/audit/audit.js';
import { fetchLedger } from '../../src/audit/ledger.js';
import type { Pool } from '../../src/db/pool.js';
import { startCli, type CliProcess } from '../helpers/process.js';

export { sleep, stopProcess, until } from './crash-helpers.js';

export interface AuditTarget {
  pool: Pool;
  redis: Redis;
  keyPrefix: string;
  /** Checks the gateway's ledger against PG too. */
  gatewayUrl?: string;
}

/** Runs every invariant of `fsale audit` and asserts all hold, naming the ones that do not. */
export async function expectAuditOk(target: AuditTarget): Promise<AuditReport> {
  const ledger = target.gatewayUrl === undefined ? undefined : await fetchLedger(target.gatewayUrl);
  const report = await runAudit(
    { pool: target.pool, redis: target.redis, keyPrefix: target.keyPrefix, ledger },
    { persistGraceMs: 0 },
  );
  const failing = report.checks.filter((c) => !c.ok);
  expect(
    failing,
    failing.map((c) => `${c.name}: expected ${c.expected}, got ${c.actual}`).join('; '),
  ).toEqual([]);
  expect(report.checks.length).toBeGreaterThan(0);
  return report;
}

export interface ApiProcess extends CliProcess {
  url: string;
}

/** `fsale serve` as a child process (dist/), resolved once it listens. */
export async function startApiProcess(
  env: Record<string, string>,
  args: string[] = [],
): Promise<ApiProcess> {
  const cli = startCli(['serve', '--port', '0', ...args], env);
  const url = await cli.waitFor(/listening on (http:\/\/[\d.:]+)/);
  return { ...cli, url };
}

/** Resident set size of a process, bytes, from /proc/<pid>/status (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

/**
 * A JWT built by hand, so a test can forge what a library would refuse to sign: `alg: none`,
 * other algorithms, missing claims. `secret` undefined leaves the signature empty.
 */
export function craftJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: string | undefined,
  hmac: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature =
    secret === undefined ? '' : createHmac(hmac, secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}
