// The audit of `fsale audit` as a test assertion.
import type { Redis } from '../../src/redis/client.js';
import { expect } from 'vitest';
import { runAudit, type AuditReport } from '../../src/audit/audit.js';
import { fetchLedger } from '../../src/audit/ledger.js';
import type { RecordedCharge } from '../../src/payments/provider-client.js';
import type { Pool } from '../../src/db/pool.js';
import type { TestServices } from './services.js';

/** The audit (docs/ARCHITECTURE.md section 5), with the gateway's ledger when a gateway runs. */
export async function audit(
  s: Pick<TestServices, 'pool' | 'redis' | 'keyPrefix'>,
  gatewayUrl?: string,
  productId?: string,
): Promise<AuditReport> {
  const ledger = gatewayUrl === undefined ? undefined : await fetchLedger(gatewayUrl);
  return runAudit(
    { pool: s.pool, redis: s.redis, keyPrefix: s.keyPrefix, ledger },
    { productId, persistGraceMs: 0 },
  );
}

/** Asserts every check holds, naming the failing ones if not. */
export function expectAuditOk(report: AuditReport): void {
  const failing = report.checks.filter((c) => !c.ok);
  expect(
    failing,
    failing.map((c) => `${c.name}: expected ${c.expected}, got ${c.actual}`).join('; '),
  ).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.checks.length).toBeGreaterThan(0);
}

/** Successful charges per order key in the gateway's ledger. */
export function successfulCharges(ledger: RecordedCharge[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of ledger) {
    if (c.status === 'succeeded') counts.set(c.orderId, (counts.get(c.orderId) ?? 0) + 1);
  }
  return counts;
}

export interface AuditTarget {
  pool: Pool;
  redis: Redis;
  keyPrefix: string;
  /** Checks the gateway's ledger against PG too. */
  gatewayUrl?: string;
}

/** Runs every invariant of `fsale audit` and asserts all hold, naming the ones that do not. */
export async function expectAuditPasses(target: AuditTarget): Promise<AuditReport> {
  const report = await audit(target, target.gatewayUrl);
  expectAuditOk(report);
  return report;
}
