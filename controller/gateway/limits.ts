/**
 * Per-offer admission limits (ServiceOffer `spec.limits`), enforced by each gateway replica
 * before any payment work: a refused request is never verified, proxied or settled.
 *
 *   rps          a token bucket per offer: `rps` requests per second, bursts of up to `rps`
 *   maxInFlight  requests of the offer being served at once (a stream counts until it ends)
 *
 * Absent or 0 means no limit. Pure apart from the injected clock.
 *
 * With N gateway replicas each enforces 1/N of every limit (rps as a rate, maxInFlight rounded
 * down, at least 1), so the replicas together never exceed what the offer declares, without
 * shared state (docs/adr/0003-ha-gateway.md).
 */
import type { ServiceOfferSpec } from "../../api/resources";

export type OfferLimits = NonNullable<ServiceOfferSpec["limits"]>;

export type Admission =
  | { readonly admitted: true; readonly limited: boolean; release(): void }
  | {
      readonly admitted: false;
      readonly reason: "rate_limited" | "too_many_in_flight";
      readonly retryAfterSeconds: number;
      readonly message: string;
    };

interface OfferState {
  rps: number;
  tokens: number;
  refilledAtMs: number;
  inFlight: number;
}

const UNLIMITED: Admission = { admitted: true, limited: false, release: () => {} };

export class OfferLimiter {
  private readonly offers = new Map<string, OfferState>();

  constructor(
    private readonly nowMs: () => number = () => performance.now(),
    private readonly replicas = 1,
  ) {}

  admit(offer: string, limits: OfferLimits | undefined): Admission {
    const share = (limit: number, whole: boolean) =>
      limit > 0 ? Math.max(1, whole ? Math.floor(limit / this.replicas) : limit / this.replicas) : 0;
    const rps = share(limits?.rps ?? 0, false);
    const maxInFlight = share(limits?.maxInFlight ?? 0, true);
    if (rps <= 0 && maxInFlight <= 0) {
      this.offers.delete(offer);
      return UNLIMITED;
    }
    const state = this.stateOf(offer, rps);
    if (maxInFlight > 0 && state.inFlight >= maxInFlight) {
      return {
        admitted: false,
        reason: "too_many_in_flight",
        retryAfterSeconds: 1,
        message: `${offer} serves at most ${limits?.maxInFlight} request(s) at once; retry shortly`,
      };
    }
    if (rps > 0) {
      this.refill(state);
      if (state.tokens < 1) {
        return {
          admitted: false,
          reason: "rate_limited",
          retryAfterSeconds: Math.max(1, Math.ceil((1 - state.tokens) / rps)),
          message: `${offer} accepts at most ${limits?.rps} request(s) per second`,
        };
      }
      state.tokens -= 1;
    }
    state.inFlight += 1;
    let released = false;
    return {
      admitted: true,
      limited: true,
      release: () => {
        if (released) return;
        released = true;
        state.inFlight -= 1;
      },
    };
  }

  /** Requests of `offer` being served now (for tests and metrics). */
  inFlight(offer: string): number {
    return this.offers.get(offer)?.inFlight ?? 0;
  }

  private stateOf(offer: string, rps: number): OfferState {
    let state = this.offers.get(offer);
    if (!state) {
      state = { rps, tokens: rps, refilledAtMs: this.nowMs(), inFlight: 0 };
      this.offers.set(offer, state);
    } else if (state.rps !== rps) {
      // A changed limit takes effect at once; the bucket never holds more than the new burst.
      this.refill(state);
      state.rps = rps;
      state.tokens = Math.min(state.tokens, rps);
    }
    return state;
  }

  private refill(state: OfferState): void {
    const now = this.nowMs();
    state.tokens = Math.min(state.rps, state.tokens + ((now - state.refilledAtMs) / 1000) * state.rps);
    state.refilledAtMs = now;
  }
}

/**
 * Per-payer admission (`spec.limits.perPayerRps`): a token bucket per (offer, paying address),
 * so one buyer cannot starve the others. The payer is known only once the facilitator verified
 * the signature (an unverified `from` could be anyone's address), so the gate asks after verify
 * and before anything is proxied or settled. Like OfferLimiter, each of N replicas enforces 1/N.
 * Idle buckets (full again) are dropped when the table grows, so it stays bounded by the active
 * payers.
 */
export type PayerAdmission =
  | { readonly admitted: true }
  | { readonly admitted: false; readonly retryAfterSeconds: number; readonly message: string };

interface PayerBucket {
  rps: number;
  tokens: number;
  refilledAtMs: number;
}

const MAX_PAYER_BUCKETS = 100_000;

export class PayerLimiter {
  private readonly buckets = new Map<string, PayerBucket>();

  constructor(
    private readonly nowMs: () => number = () => performance.now(),
    private readonly replicas = 1,
  ) {}

  admit(offer: string, payer: string, perPayerRps: number | undefined): PayerAdmission {
    if (!perPayerRps || perPayerRps <= 0) return { admitted: true };
    const rps = Math.max(1, perPayerRps / this.replicas);
    const key = `${offer}\n${payer.toLowerCase()}`;
    const now = this.nowMs();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= MAX_PAYER_BUCKETS) this.sweep(now);
      bucket = { rps, tokens: rps, refilledAtMs: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(
      rps,
      (bucket.rps === rps ? bucket.tokens : Math.min(bucket.tokens, rps)) +
        ((now - bucket.refilledAtMs) / 1000) * rps,
    );
    bucket.rps = rps;
    bucket.refilledAtMs = now;
    if (bucket.tokens < 1) {
      return {
        admitted: false,
        retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / rps)),
        message: `${offer} accepts at most ${perPayerRps} request(s) per second from one payer (${payer}); nothing was charged, retry after Retry-After seconds`,
      };
    }
    bucket.tokens -= 1;
    return { admitted: true };
  }

  /** Payers with a bucket (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.refilledAtMs) / 1000) * b.rps >= b.rps) this.buckets.delete(key);
    }
  }
}
