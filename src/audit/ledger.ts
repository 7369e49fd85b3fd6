import { ServiceUnavailableError } from '../domain/errors.js';
import { PaymentProvider, type RecordedCharge } from '../payments/provider-client.js';

/**
 * The provider's whole ledger for the audit: an unreachable provider is a service outage
 * (exit 2), not a failed invariant.
 */
export async function fetchLedger(gatewayUrl: string): Promise<RecordedCharge[]> {
  try {
    return await new PaymentProvider(gatewayUrl).ledger();
  } catch (error) {
    throw new ServiceUnavailableError('gateway', gatewayUrl, error);
  }
}
