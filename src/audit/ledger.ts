import { ServiceUnavailableError } from '../domain/errors.js';

export interface LedgerEntry {
  key: string;
  status: 'succeeded' | 'declined' | 'voided';
  chargeId?: string;
  orderId: string;
  amountCents: number;
}

/** Every charge the gateway recorded (GET /charges, page by page). */
export async function fetchLedger(gatewayUrl: string): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  let after = '0';
  try {
    for (;;) {
      const response = await fetch(new URL(`/charges?after=${after}&limit=1000`, gatewayUrl), {
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) throw new Error(`GET /charges answered ${response.status}`);
      const page = (await response.json()) as { charges: LedgerEntry[]; next: string | null };
      entries.push(...page.charges);
      if (page.next === null) return entries;
      after = page.next;
    }
  } catch (error) {
    throw new ServiceUnavailableError('gateway', gatewayUrl, error);
  }
}
