// How the payment worker and reconcile talk to the payment provider (`fsale gateway` or any
// provider with the same contract: POST /charges with Idempotency-Key, GET /charges/:key).

export type ChargeOutcome =
  | { kind: 'paid'; chargeId: string; status: number; latencyMs: number }
  | { kind: 'declined'; status: number; latencyMs: number }
  /** 429/503: nothing was charged; try again after `retryAfterMs`. */
  | { kind: 'retryable'; status: number; retryAfterMs: number; latencyMs: number }
  /** Timeout or connection error: the charge may or may not have happened. */
  | { kind: 'unknown'; reason: string; latencyMs: number };

export type LedgerAnswer =
  | { state: 'succeeded'; chargeId: string }
  | { state: 'declined' }
  | { state: 'none' }
  | { state: 'in_progress' };

export class GatewayClient {
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
      if (response.status === 429 || response.status === 503) {
        const retryAfter = Number(response.headers.get('retry-after'));
        return {
          kind: 'retryable',
          status: response.status,
          retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 0,
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

  /** What the provider's ledger says happened to the charge with this key. */
  async lookup(key: string, timeoutMs = 5_000): Promise<LedgerAnswer> {
    const response = await fetch(new URL(`/charges/${encodeURIComponent(key)}`, this.baseUrl), {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status === 404) return { state: 'none' };
    if (response.status === 409) return { state: 'in_progress' };
    if (!response.ok) throw new Error(`gateway ledger answered ${response.status} for ${key}`);
    const body = (await response.json()) as { status?: unknown; chargeId?: unknown };
    if (body.status === 'succeeded' && typeof body.chargeId === 'string')
      return { state: 'succeeded', chargeId: body.chargeId };
    if (body.status === 'declined') return { state: 'declined' };
    throw new Error(`gateway ledger gave an unknown status for ${key}`);
  }
}
