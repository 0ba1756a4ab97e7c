/**
 * What the facilitator's `GET /supported` means for an offer (pure; the polling is in
 * gateway/facilitatorWatch.ts). An offer is payable only when the facilitator advertises an x402
 * v2 kind for the scheme and network of every payment it accepts: a 402 for anything else would
 * ask buyers to sign payments no one can verify or settle. `eip2612GasSponsoring` is declared in
 * the 402 only when the facilitator lists the extension, since it is the facilitator that
 * submits the permit.
 */
import type { SupportedResponse } from "@x402/core/types";
import type { FacilitatorReason } from "../../api/conditions";
import type { Payment } from "../../api/resources";

export const EIP2612_GAS_SPONSORING = "eip2612GasSponsoring";

/** The last `/supported` answer and the last failure to get one, as the watcher saw them. */
export interface SupportObservations {
  readonly url: string;
  readonly last?: { readonly supported: SupportedResponse; readonly at: number } | undefined;
  readonly lastError?: { readonly message: string; readonly at: number } | undefined;
}

/** The facilitator's capabilities as the gateway acts on them now. */
export type FacilitatorView =
  | { readonly state: "known"; readonly url: string; readonly supported: SupportedResponse }
  | { readonly state: "unreachable"; readonly url: string; readonly message: string };

/**
 * The view at `now`. A failed read does not discard the last answer: it is kept for `maxStaleMs`
 * after it was read, so one failed poll (a facilitator restart, a dropped connection) does not
 * take every Ready offer down; after that the gateway no longer knows what the facilitator
 * supports and offers become FacilitatorUnreachable.
 */
export function facilitatorView(obs: SupportObservations, now: number, maxStaleMs: number): FacilitatorView {
  const { url, last, lastError } = obs;
  if (last && (!lastError || lastError.at < last.at || now - last.at <= maxStaleMs)) {
    return { state: "known", url, supported: last.supported };
  }
  const why = lastError?.message ?? "not read yet";
  const message = last
    ? `the facilitator ${url} has not answered GET /supported for ${Math.round((now - last.at) / 1000)} s (last error: ${why})`
    : `the facilitator ${url} has not answered GET /supported yet (${why}); is FACILITATOR_URL right and the facilitator running?`;
  return { state: "unreachable", url, message };
}

export type OfferSupport =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: FacilitatorReason; readonly message: string };

/** `eip155:*` style patterns match every network of their namespace, as in @x402/core. */
function networkMatches(advertised: string, network: string): boolean {
  if (advertised === network) return true;
  return advertised.endsWith(":*") && network.startsWith(advertised.slice(0, -1));
}

/** Whether the facilitator serves every payment of an offer, and if not, which and why. */
export function offerSupport(payments: readonly Payment[], view: FacilitatorView): OfferSupport {
  if (view.state === "unreachable")
    return { ok: false, reason: "FacilitatorUnreachable", message: view.message };
  const missing = payments.filter(
    (p) =>
      !view.supported.kinds.some(
        (k) => k.x402Version === 2 && k.scheme === p.scheme && networkMatches(k.network, p.network),
      ),
  );
  if (missing.length === 0) return { ok: true };
  const named = [...new Set(missing.map((p) => `scheme "${p.scheme}" on ${p.network}`))].join(", ");
  const advertised =
    view.supported.kinds
      .filter((k) => k.x402Version === 2)
      .map((k) => `${k.scheme} on ${k.network}`)
      .join(", ") || "none";
  return {
    ok: false,
    reason: "FacilitatorUnsupported",
    message: `the facilitator ${view.url} does not support x402 v2 ${named} (it advertises: ${advertised}); use a facilitator that settles on that network, or change the offer's payment`,
  };
}

/** The extensions the 402 may declare: those the facilitator advertises. */
export function facilitatorExtensions(view: FacilitatorView): readonly string[] {
  return view.state === "known" ? (view.supported.extensions ?? []) : [];
}

/**
 * The address an `upto` witness must name as its facilitator, per CAIP-2 network: from the v2
 * `upto` kinds' `extra.facilitatorAddress`. None while the facilitator is unreachable, so the 402
 * offers `exact` only.
 */
export function uptoFacilitators(view: FacilitatorView): ReadonlyMap<string, string> {
  return kindAddresses(view, "upto", "facilitatorAddress");
}

/**
 * The receiver authorizer of batch-settlement channels per CAIP-2 network: from the v2
 * `batch-settlement` kinds' `extra.receiverAuthorizer` (the facilitator signs claims and refunds
 * with it). None while the facilitator is unreachable, so the 402 offers no channels.
 */
export function channelAuthorizers(view: FacilitatorView): ReadonlyMap<string, string> {
  return kindAddresses(view, "batch-settlement", "receiverAuthorizer");
}

/** `extra[field]` of the facilitator's v2 kinds of `scheme`, by network (empty when unknown). */
function kindAddresses(view: FacilitatorView, scheme: string, field: string): ReadonlyMap<string, string> {
  const addresses = new Map<string, string>();
  if (view.state !== "known") return addresses;
  for (const kind of view.supported.kinds) {
    const address = kind.extra?.[field];
    if (kind.x402Version === 2 && kind.scheme === scheme && typeof address === "string")
      addresses.set(kind.network, address);
  }
  return addresses;
}
