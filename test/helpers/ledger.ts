export interface LedgerCharge {
  key: string;
  status: 'succeeded' | 'declined';
  chargeId?: string;
  orderId: string;
  amountCents: number;
}

/** Every charge the gateway recorded, page by page. */
export async function readLedger(gatewayUrl: string): Promise<LedgerCharge[]> {
  const charges: LedgerCharge[] = [];
  let after = '0';
  for (;;) {
    const response = await fetch(`${gatewayUrl}/charges?after=${after}&limit=1000`);
    const page = (await response.json()) as { charges: LedgerCharge[]; next: string | null };
    charges.push(...page.charges);
    if (page.next === null) return charges;
    after = page.next;
  }
}
