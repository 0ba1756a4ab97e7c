/**
 * Idempotent paid retries: the x402 `payment-identifier` extension. Every 402 declares it
 * (optional); a buyer that puts an `id` in its payment and sends the same payment again (its
 * response was lost) gets the answer the first request got: no second settlement, no second
 * request to the upstream. The same `id` with a different payment, or for another request
 * (method, URL or body), is refused (409); a new payment needs a new id.
 *
 * Entries are keyed by payer and id (the payer is the signed `from`: an identical payload proves
 * it), kept in memory per gateway replica for IDEMPOTENCY_TTL_SECONDS, each answer up to
 * MAX_KEPT_RESPONSE_BYTES and all of them up to MAX_KEPT_BYTES (oldest dropped first). A retry
 * that comes while the first request is still running waits for it. Only settled requests are
 * kept: a request that was not charged is forgotten, so its retry is handled as new.
 */
import { createHash } from "node:crypto";
import type { PaymentPayloadV2 } from "@x402/core/schemas";
import type { PaymentPayload } from "@x402/core/types";
import {
  declarePaymentIdentifierExtension,
  extractPaymentIdentifier,
  isValidPaymentId,
  PAYMENT_IDENTIFIER,
} from "@x402/extensions/payment-identifier";
import { bindingOf } from "./paymentHeader";
import { type Rejection, rejection } from "./reasons";

export { PAYMENT_IDENTIFIER };

/** How long a settled answer is kept for a retry: longer than any buyer's retry loop. */
export const IDEMPOTENCY_TTL_SECONDS = 600;
/** An answer larger than this is not kept (its retry is told it was settled, see `settled`). */
export const MAX_KEPT_RESPONSE_BYTES = 1 << 20;
/** All kept answers together; the oldest are dropped first. */
export const MAX_KEPT_BYTES = 64 << 20;
const MAX_ENTRIES = 10_000;

/** The 402's declaration: identifiers are accepted, not required. */
export function paymentIdentifierDeclaration(): Record<string, unknown> {
  return { [PAYMENT_IDENTIFIER]: declarePaymentIdentifierExtension(false) };
}

/** A payment that carries an identifier: where it is kept, and what a retry must match. */
export interface IdentifiedPayment {
  readonly id: string;
  /** payer + id. */
  readonly key: string;
  /** The signed payload and the request it pays for (method, URL and body). */
  readonly fingerprint: string;
}

/**
 * The identifier of a v2 payment, if it carries one (v1 has no extensions). Pure. A malformed
 * identifier is refused: the buyer asked for idempotency and would not get it.
 */
export function identifyPayment(
  payload: PaymentPayloadV2,
  method: string,
  resourceUrl: string,
  /** The request's body, when it has one: a retry must send the same bytes. */
  body?: Uint8Array,
): IdentifiedPayment | Rejection | undefined {
  const info = (payload.extensions?.[PAYMENT_IDENTIFIER] as { info?: { id?: unknown } } | undefined)?.info;
  if (info?.id === undefined) return undefined;
  // The id alone is checked (isValidPaymentId): the library's validatePaymentIdentifier also
  // compiles the schema the buyer echoed with ajv, buyer-supplied code generation on every request.
  const id = extractPaymentIdentifier(payload as PaymentPayload, false);
  if (id === null || !isValidPaymentId(id))
    return rejection(
      "invalid_payment_identifier",
      `extensions["${PAYMENT_IDENTIFIER}"].info.id is not a payment identifier: it must be 16-128 letters, digits, '-' or '_'`,
    );
  const payer = (bindingOf(payload.payload).from ?? "").toLowerCase();
  const bodyDigest = body?.length ? createHash("sha256").update(body).digest("hex") : "";
  const fingerprint = createHash("sha256")
    .update(JSON.stringify([method.toUpperCase(), resourceUrl, bodyDigest, payload]))
    .digest("hex");
  return { id, key: `${payer}/${id}`, fingerprint };
}

/** The answer a settled request got, as sent (receipt header included). */
export interface KeptResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

/** What a settled request left for its retries. */
export type Settled =
  | { readonly kept: KeptResponse }
  /** Settled, but the answer was not kept (too large, or the buyer left mid-stream). */
  | { readonly receipt: Record<string, string>; readonly why: string };

export type Lookup =
  /** First use: handle it, then call `settled` or `forget`. */
  | { readonly kind: "new" }
  | { readonly kind: "conflict" }
  | { readonly kind: "running"; readonly done: Promise<void> }
  | { readonly kind: "settled"; readonly settled: Settled };

interface Entry {
  readonly fingerprint: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  settled?: Settled;
  bytes: number;
  done: Promise<void>;
  finish: () => void;
}

export class PaidResponses {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly limits: { ttlSeconds: number; maxResponseBytes: number; maxBytes: number } = {
      ttlSeconds: IDEMPOTENCY_TTL_SECONDS,
      maxResponseBytes: MAX_KEPT_RESPONSE_BYTES,
      maxBytes: MAX_KEPT_BYTES,
    },
  ) {}

  get maxResponseBytes(): number {
    return this.limits.maxResponseBytes;
  }

  /**
   * Where `payment` stands. Synchronous, so concurrent copies see the first one at once: the
   * first gets "new" (and is registered as running), the others wait for it.
   */
  lookup(payment: IdentifiedPayment, now: number): Lookup {
    this.expire(now);
    const entry = this.entries.get(payment.key);
    if (!entry) {
      let finish = () => {};
      const done = new Promise<void>((resolve) => {
        finish = resolve;
      });
      this.entries.set(payment.key, {
        fingerprint: payment.fingerprint,
        expiresAt: now + this.limits.ttlSeconds,
        bytes: 0,
        done,
        finish,
      });
      return { kind: "new" };
    }
    if (entry.fingerprint !== payment.fingerprint) return { kind: "conflict" };
    if (entry.settled) return { kind: "settled", settled: entry.settled };
    return { kind: "running", done: entry.done };
  }

  /** The first request was settled: its answer (when small enough) serves the retries. */
  settle(key: string, settled: Settled): void {
    const entry = this.entries.get(key);
    if (!entry || entry.settled) return;
    const kept = "kept" in settled ? settled.kept : undefined;
    const size = kept ? kept.body.length + JSON.stringify(kept.headers).length : 0;
    entry.settled =
      kept && size > this.limits.maxResponseBytes
        ? {
            receipt: receiptOf(kept.headers),
            why: `its answer is over ${this.limits.maxResponseBytes} bytes, too large to keep`,
          }
        : settled;
    entry.bytes = kept && size <= this.limits.maxResponseBytes ? size : 0;
    this.bytes += entry.bytes;
    // Oldest first (Map keeps insertion order) until the kept answers fit.
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.limits.maxBytes && this.entries.size <= MAX_ENTRIES) break;
      if (!e.settled) continue;
      this.drop(k, e);
    }
    entry.finish();
  }

  /** The first request was not charged: its id is free again (a retry is handled as new). */
  forget(key: string): void {
    const entry = this.entries.get(key);
    if (!entry || entry.settled) return;
    this.drop(key, entry);
  }

  private expire(now: number): void {
    for (const [k, e] of this.entries) {
      if (e.expiresAt >= now) break; // insertion order is expiry order
      if (e.settled) this.drop(k, e);
    }
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    entry.finish();
  }
}

function receiptOf(headers: Record<string, string | string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["payment-response", "x-payment-response"]) {
    const value = headers[name];
    if (typeof value === "string") out[name] = value;
  }
  return out;
}
