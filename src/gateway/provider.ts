// The mock provider without HTTP: idempotent charges per key over the behaviour model.
//
// One charge per key, ever: the ledger is checked and the in-flight draw registered in the
// same synchronous step (no await between them), so requests that share a key and arrive
// together find either the recorded answer or the draw in flight and share it. Transient
// answers (503, 429) record nothing and leave the key free for a new draw; final answers
// (success, decline) are recorded before the draw stops being in flight, so there is no
// moment in which a request could start a second draw.

import { drawOutcome, type BehaviourModel } from './behaviour.js';
import { Ledger, sameRequest, type ChargeRequest, type LedgerEntry } from './ledger.js';

export type ChargeAnswer =
  | { kind: 'succeeded'; charge: LedgerEntry; replayed: boolean }
  | { kind: 'declined'; charge: LedgerEntry; replayed: boolean }
  | { kind: 'unavailable' }
  | { kind: 'rateLimited'; retryAfterSeconds: number }
  /** Never answer: the caller times out. The ledger knows whether money moved. */
  | { kind: 'hang' }
  /** The key was used before with another order or amount (422); nothing happened. */
  | { kind: 'keyReused'; original: ChargeRequest }
  /** The key was voided before this charge arrived: refused, nothing charged, ever (409). */
  | { kind: 'voided'; entry: LedgerEntry };

export type VoidAnswer =
  /** The key is void now (or was already): no charge with it can ever succeed. */
  | { kind: 'voided'; entry: LedgerEntry; replayed: boolean }
  /** Too late: the key already has a final charge answer, which stands. */
  | { kind: 'final'; charge: LedgerEntry }
  /** A charge with the key is being decided now: ask again once it has an answer. */
  | { kind: 'inFlight' };

export type ChargeLookup =
  | { state: 'recorded'; charge: LedgerEntry; attempts: number }
  | { state: 'inFlight'; attempts: number }
  | { state: 'none'; attempts: number };

interface Flight {
  request: ChargeRequest;
  answer: Promise<ChargeAnswer>;
}

export class MockProvider {
  readonly ledger = new Ledger();
  readonly #inFlight = new Map<string, Flight>();
  /** Charge requests per key (all of them: transient, hung, replayed). */
  readonly #attempts = new Map<string, number>();
  /** Outcomes drawn per key: the attempt number of the model's next draw for that key. */
  readonly #draws = new Map<string, number>();
  readonly #delays = new Delays();

  constructor(readonly model: BehaviourModel) {}

  charge(key: string, request: ChargeRequest): Promise<ChargeAnswer> {
    const recorded = this.ledger.get(key);
    if (recorded?.status === 'voided') {
      this.#countAttempt(key);
      return Promise.resolve({ kind: 'voided', entry: recorded });
    }
    if (recorded !== undefined) {
      if (!sameRequest(recorded, request)) return Promise.resolve(keyReused(recorded));
      this.#countAttempt(key);
      return Promise.resolve(finalAnswer(recorded, true));
    }
    const flight = this.#inFlight.get(key);
    if (flight !== undefined) {
      if (!sameRequest(flight.request, request)) return Promise.resolve(keyReused(flight.request));
      this.#countAttempt(key);
      return flight.answer.then(asReplay);
    }

    this.#countAttempt(key);
    const attempt = this.#draws.get(key) ?? 0;
    this.#draws.set(key, attempt + 1);
    const outcome = drawOutcome(this.model, key, attempt);
    if (outcome.kind === 'hang') {
      if (outcome.charged) {
        this.ledger.record({
          key,
          ...pick(request),
          status: 'succeeded',
          chargeId: outcome.chargeId,
          answered: false,
        });
      }
      return Promise.resolve({ kind: 'hang' });
    }

    const answer = this.#delays.wait(outcome.latencyMs).then((): ChargeAnswer => {
      let settled: ChargeAnswer;
      switch (outcome.kind) {
        case 'succeeded':
          settled = {
            kind: 'succeeded',
            charge: this.ledger.record({
              key,
              ...pick(request),
              status: 'succeeded',
              chargeId: outcome.chargeId,
              answered: true,
            }),
            replayed: false,
          };
          break;
        case 'declined':
          settled = {
            kind: 'declined',
            charge: this.ledger.record({
              key,
              ...pick(request),
              status: 'declined',
              declineCode: outcome.declineCode,
              answered: true,
            }),
            replayed: false,
          };
          break;
        case 'unavailable':
          settled = { kind: 'unavailable' };
          break;
        case 'rateLimited':
          settled = { kind: 'rateLimited', retryAfterSeconds: outcome.retryAfterSeconds };
          break;
      }
      this.#inFlight.delete(key);
      return settled;
    });
    this.#inFlight.set(key, { request: pick(request), answer });
    return answer;
  }

  /**
   * Cancels a key that has no charge yet, so that a charge request still on its way (a proxy,
   * an egress queue, a slow network) is refused when it arrives. Synchronous like `charge`'s
   * check-and-register step, so a void and a charge of one key are strictly ordered.
   */
  void(key: string, request: ChargeRequest): VoidAnswer {
    const recorded = this.ledger.get(key);
    if (recorded?.status === 'voided') return { kind: 'voided', entry: recorded, replayed: true };
    if (recorded !== undefined) return { kind: 'final', charge: recorded };
    if (this.#inFlight.has(key)) return { kind: 'inFlight' };
    const entry = this.ledger.record({ key, ...pick(request), status: 'voided', answered: true });
    return { kind: 'voided', entry, replayed: false };
  }

  lookup(key: string): ChargeLookup {
    const attempts = this.#attempts.get(key) ?? 0;
    const charge = this.ledger.get(key);
    if (charge !== undefined) return { state: 'recorded', charge, attempts };
    if (this.#inFlight.has(key)) return { state: 'inFlight', attempts };
    return { state: 'none', attempts };
  }

  attempts(key: string): number {
    return this.#attempts.get(key) ?? 0;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Ends every pending latency now, so a shutdown answers the charges in flight (and records
   * them) instead of waiting out a long tail; later charges answer without delay.
   */
  hurry(): void {
    this.#delays.flush();
  }

  #countAttempt(key: string): void {
    this.#attempts.set(key, (this.#attempts.get(key) ?? 0) + 1);
  }
}

function pick(request: ChargeRequest): ChargeRequest {
  return { orderId: request.orderId, amountCents: request.amountCents };
}

function keyReused(original: ChargeRequest): ChargeAnswer {
  return { kind: 'keyReused', original: pick(original) };
}

/** The answer of a recorded charge (succeeded or declined; voided keys are answered earlier). */
function finalAnswer(charge: LedgerEntry, replayed: boolean): ChargeAnswer {
  return charge.status === 'succeeded'
    ? { kind: 'succeeded', charge, replayed }
    : { kind: 'declined', charge, replayed };
}

function asReplay(answer: ChargeAnswer): ChargeAnswer {
  return answer.kind === 'succeeded' || answer.kind === 'declined'
    ? { ...answer, replayed: true }
    : answer;
}

/** Timers that can all be cut short at once (graceful shutdown). */
class Delays {
  readonly #pending = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #hurried = false;

  wait(ms: number): Promise<void> {
    if (this.#hurried || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#pending.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.#pending.add(entry);
    });
  }

  flush(): void {
    this.#hurried = true;
    for (const entry of this.#pending) {
      clearTimeout(entry.timer);
      entry.resolve();
    }
    this.#pending.clear();
  }
}
