// How fsale talks to the payment provider (`fsale gateway` or any provider with the same
// contract: POST /charges with Idempotency-Key, GET /charges/:key, POST /charges/:key/void,
// GET /charges?after=): the payment worker charges, reconcile voids (which answers with the
// charge when one got there first), the audit reads the whole ledger. The mock provider itself lives in src/gateway/.

export type ChargeOutcome =
  | { kind: 'paid'; chargeId: string; status: number; latencyMs: number }
  /** Declined, or refused because the key was voided: nothing was charged. */
  | { kind: 'declined'; status: number; latencyMs: number }
  /** 429/503: nothing was charged; try again after `retryAfterMs`. */
  | { kind: 'retryable'; status: number; retryAfterMs: number; latencyMs: number }
  /** Timeout or connection error: the charge may or may not have happened. */
  | { kind: 'unknown'; reason: string; latencyMs: number };

export type LedgerAnswer =
  | { state: 'succeeded'; chargeId: string }
  | { state: 'declined' }
  /**
   * No charge with the key was made, and none can be any more. (A ledger without a charge for
   * the key is no proof that none will come, a request may still be on its way: only a void is.)
   */
  | { state: 'voided' }
  | { state: 'in_progress' };

/** Provider problem types the client tells apart (src/gateway/problems.ts). */
const VOIDED = 'urn:fsale:gateway:charge_voided';
const EXISTS = 'urn:fsale:gateway:charge_exists';

/**
 * The longest wait a provider's Retry-After can impose on one charge: a hostile or broken
 * provider asking for days must not park orders (and their units) for days.
 */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * A charge as the provider's ledger lists it (GET /charges). Not the mock provider's own
 * ledger entry (src/gateway/ledger.ts), which carries more than the contract promises.
 */
export interface RecordedCharge {
  key: string;
  status: 'succeeded' | 'declined' | 'voided';
  chargeId?: string;
  orderId: string;
  amountCents: number;
}

export class PaymentProvider {
  constructor(readonly baseUrl: string) {}

  async charge(
    orderId: string,
    amountCents: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<ChargeOutcome> {
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    // Our own timer rather than AbortSignal.any([signal, AbortSignal.timeout()]): on Node 20
    // the composite signal can lose its timeout to garbage collection, and a hung charge then
    // waits for the lease to expire instead of becoming needs_reconciliation.
    const controller = new AbortController();
    let why = 'aborted';
    const timer = setTimeout(() => {
      why = `no answer within ${timeoutMs} ms`;
      controller.abort();
    }, timeoutMs);
    const onParentAbort = () => controller.abort();
    if (signal?.aborted === true) controller.abort();
    else signal?.addEventListener('abort', onParentAbort, { once: true });
    try {
      const response = await fetch(new URL('/charges', this.baseUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': orderId },
        body: JSON.stringify({ orderId, amountCents }),
        signal: controller.signal,
      });
      const body = (await response.json().catch(() => ({}))) as { chargeId?: unknown };
      if (response.status === 200 || response.status === 201) {
        if (typeof body.chargeId !== 'string')
          return { kind: 'unknown', reason: 'success without chargeId', latencyMs: latency() };
        return {
          kind: 'paid',
          chargeId: body.chargeId,
          status: response.status,
          latencyMs: latency(),
        };
      }
      if (response.status === 402) return { kind: 'declined', status: 402, latencyMs: latency() };
      if (response.status === 409 && (body as { type?: unknown }).type === VOIDED)
        return { kind: 'declined', status: 409, latencyMs: latency() };
      if (response.status === 429 || response.status === 503) {
        const retryAfter = Number(response.headers.get('retry-after'));
        return {
          kind: 'retryable',
          status: response.status,
          retryAfterMs:
            Number.isFinite(retryAfter) && retryAfter > 0
              ? Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS)
              : 0,
          latencyMs: latency(),
        };
      }
      // Anything else (a 5xx, a 4xx we did not expect) leaves the outcome unknown.
      return {
        kind: 'unknown',
        reason: `gateway answered ${response.status}`,
        latencyMs: latency(),
      };
    } catch (error) {
      const reason = controller.signal.aborted
        ? why
        : error instanceof Error
          ? error.message
          : String(error);
      return { kind: 'unknown', reason, latencyMs: latency() };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onParentAbort);
    }
  }

  /**
   * Voids the key so that no charge with it can happen any more, even one still on its way;
   * answers what the ledger holds for the key afterwards: `voided` (now or before), the charge
   * that got there first (`succeeded`/`declined`), or `in_progress`.
   */
  async void(key: string, amountCents: number, timeoutMs = 5_000): Promise<LedgerAnswer> {
    const response = await fetch(
      new URL(`/charges/${encodeURIComponent(key)}/void`, this.baseUrl),
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ orderId: key, amountCents }),
        signal: AbortSignal.timeout(timeoutMs),
      },
    );
    const body = (await response.json().catch(() => ({}))) as { type?: unknown; charge?: unknown };
    if (response.ok) return ledgerState(key, body);
    if (response.status === 409 && body.type === EXISTS) return ledgerState(key, body.charge);
    if (response.status === 409) return { state: 'in_progress' };
    throw new Error(`gateway void answered ${response.status} for ${key}`);
  }

  /** Every charge the provider recorded, page by page. */
  async ledger(pageTimeoutMs = 10_000): Promise<RecordedCharge[]> {
    const charges: RecordedCharge[] = [];
    let after = '0';
    for (;;) {
      const response = await fetch(new URL(`/charges?after=${after}&limit=1000`, this.baseUrl), {
        signal: AbortSignal.timeout(pageTimeoutMs),
      });
      if (!response.ok) throw new Error(`GET /charges answered ${response.status}`);
      const page = (await response.json()) as { charges: RecordedCharge[]; next: string | null };
      charges.push(...page.charges);
      if (page.next === null) return charges;
      after = page.next;
    }
  }
}

/** A ledger record (a void's, or the charge a void found) as a LedgerAnswer. */
function ledgerState(key: string, record: unknown): LedgerAnswer {
  const { status, chargeId } = (record ?? {}) as { status?: unknown; chargeId?: unknown };
  if (status === 'succeeded' && typeof chargeId === 'string')
    return { state: 'succeeded', chargeId };
  if (status === 'declined') return { state: 'declined' };
  if (status === 'voided') return { state: 'voided' };
  throw new Error(`gateway ledger gave an unknown status for ${key}`);
}
