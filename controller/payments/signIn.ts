/**
 * Sign-in routes (`gate: auth`): a wallet signature instead of a payment, with x402's
 * sign-in-with-x extension (CAIP-122; SIWE / EIP-4361 on eip155 chains) from @x402/extensions.
 *
 *   no SIGN-IN-WITH-X header        → 401 sign_in_required with a fresh challenge
 *   malformed, wrong origin or
 *   route, too old, expired, a bad
 *   signature, an unsupported chain → 401 with the reason (the library's invalid_siwx_* codes or
 *                                     ours) and a fresh challenge; nothing proxied
 *   a nonce seen before             → 401 sign_in_replayed
 *   valid                           → proxied without the header, with X-Signed-In-Address
 *
 * The challenge travels as the extension says, in PAYMENT-REQUIRED (an x402 v2 PaymentRequired
 * with `accepts: []`, as @x402/core writes for auth-only routes, and `extensions["sign-in-with-x"]`),
 * also as the JSON body. The status is 401, not @x402/core's 402: nothing is for sale on this
 * route, and a payment client must not try to pay it. `WWW-Authenticate` names the scheme.
 * `decideSignIn` decides from the header alone (with the nonce store); `SignInGate` does the I/O.
 */
import { randomBytes } from "node:crypto";
import type * as http from "node:http";
import { encodePaymentRequiredHeader } from "@x402/core/http";
import type { PaymentRequired } from "@x402/core/types";
import {
  type CompleteSIWxInfo,
  declareSIWxExtension,
  parseSIWxHeader,
  SIGN_IN_WITH_X,
  type SIWxExtension,
  validateSIWxMessage,
  verifySIWxSignature,
} from "@x402/extensions/sign-in-with-x";
import type { ServiceOfferSpec } from "../../api/resources";
import type { GatedRoute, ProxyFn } from "../gateway/paymentGate";
import type { HeldOffer } from "../gateway/routing";
import { errorMessage } from "../shared/log";
import { offerPayments } from "./requirements";

/** The request header a client proves its wallet with (the extension's name). */
export const SIGN_IN_HEADER = SIGN_IN_WITH_X;
/** Set by the gateway for the upstream: the wallet that signed in. A client's own is dropped. */
export const SIGNED_IN_ADDRESS_HEADER = "x-signed-in-address";
/** How long a challenge (and a credential signed for it) is good for. */
export const SIGN_IN_TTL_SECONDS = 300;
/** How old a credential's issuedAt may be: the library's default, said here to size the nonce memory. */
const MAX_AGE_MS = 5 * 60_000;

/** Our refusals; the library's `invalid_siwx_*` codes are passed on as it names them. */
export type SignInReason =
  | "sign_in_required"
  | "invalid_sign_in"
  | "sign_in_wrong_route"
  | "sign_in_unsupported_chain"
  | "sign_in_replayed"
  | "sign_in_busy"
  | `invalid_siwx_${string}`;

export type SignInVerdict =
  | { readonly ok: true; readonly address: string; readonly nonce: string; readonly forgetAt: number }
  | { readonly ok: false; readonly reason: SignInReason; readonly message: string };

/**
 * Nonces of accepted credentials, until they could no longer be accepted anyway (issuedAt too old
 * or expired). Per gateway process: with several replicas a credential could be used once on each
 * of them within its 5 minutes (README, Sign-in routes).
 */
export class NonceMemory {
  private readonly seen = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  used(nonce: string, nowMs: number): boolean {
    const until = this.seen.get(nonce);
    return until !== undefined && until > nowMs;
  }

  /** False when the memory is full of live nonces: refuse rather than forget one early. */
  remember(nonce: string, untilMs: number, nowMs: number): boolean {
    if (this.seen.size >= this.max)
      for (const [n, until] of this.seen) if (until <= nowMs) this.seen.delete(n);
    if (this.seen.size >= this.max) return false;
    this.seen.set(nonce, untilMs);
    return true;
  }
}

/** The eip155 networks a wallet may sign in on: the offer's payment networks. */
export function signInNetworks(spec: ServiceOfferSpec): string[] {
  return [...new Set(offerPayments(spec).map((p) => p.network))];
}

/**
 * Checks a SIGN-IN-WITH-X header against the public origin, the requested resource and the
 * offer's networks: fields first (the library), then the signature (the library, EOA by ecrecover,
 * no RPC), then that its nonce is new. Claims nothing: the caller remembers the nonce.
 */
export async function decideSignIn(
  header: string | undefined,
  ctx: { readonly origin: URL; readonly resourceUrl: string; readonly networks: readonly string[] },
  nonces: NonceMemory,
  nowMs: number,
): Promise<SignInVerdict> {
  if (!header)
    return {
      ok: false,
      reason: "sign_in_required",
      message: `sign in with a wallet: sign the challenge in PAYMENT-REQUIRED (extensions["${SIGN_IN_WITH_X}"]) and send it in the ${SIGN_IN_WITH_X} header`,
    };
  let payload: ReturnType<typeof parseSIWxHeader>;
  try {
    payload = parseSIWxHeader(header);
  } catch (err) {
    return {
      ok: false,
      reason: "invalid_sign_in",
      message: `the ${SIGN_IN_WITH_X} header is not a sign-in credential: ${errorMessage(err)}`,
    };
  }
  const fields = await validateSIWxMessage(payload, ctx.origin, { maxAge: MAX_AGE_MS });
  if (!fields.isValid) return { ok: false, reason: fields.invalidReason, message: fields.invalidMessage };
  // The library binds the origin only; a credential is for the route it was issued for.
  const wanted = new URL(ctx.resourceUrl);
  const signedFor = new URL(payload.uri);
  if (signedFor.pathname !== wanted.pathname)
    return {
      ok: false,
      reason: "sign_in_wrong_route",
      message: `the credential was signed for ${signedFor.pathname}, not ${wanted.pathname}`,
    };
  if (!ctx.networks.includes(payload.chainId))
    return {
      ok: false,
      reason: "sign_in_unsupported_chain",
      message: `sign in on ${ctx.networks.join(" or ")}, not ${payload.chainId}`,
    };
  const signature = await verifySIWxSignature(payload);
  if (!signature.isValid)
    return { ok: false, reason: signature.invalidReason, message: signature.invalidMessage };
  if (nonces.used(payload.nonce, nowMs))
    return {
      ok: false,
      reason: "sign_in_replayed",
      message: "this credential was already used: sign a new challenge",
    };
  const expires = payload.expirationTime ? Date.parse(payload.expirationTime) : Number.POSITIVE_INFINITY;
  const forgetAt = Math.min(Date.parse(payload.issuedAt) + MAX_AGE_MS, expires);
  return { ok: true, address: signature.payer, nonce: payload.nonce, forgetAt };
}

/** A fresh challenge for `resourceUrl`: the extension as @x402/extensions declares it. */
export function signInChallenge(
  offer: HeldOffer,
  origin: URL,
  resourceUrl: string,
  nowMs: number,
): SIWxExtension {
  const declared = declareSIWxExtension({
    network: signInNetworks(offer.spec),
    statement: `Sign in to ${offer.name}`,
    expirationSeconds: SIGN_IN_TTL_SECONDS,
  })[SIGN_IN_WITH_X];
  const uri = `${origin.origin}${new URL(resourceUrl).pathname}`;
  const info: SIWxExtension["info"] = {
    domain: origin.host,
    uri,
    version: "1",
    nonce: randomBytes(16).toString("hex"),
    issuedAt: new Date(nowMs).toISOString(),
    expirationTime: new Date(nowMs + SIGN_IN_TTL_SECONDS * 1000).toISOString(),
    resources: [uri],
    ...(declared?.info.statement ? { statement: declared.info.statement } : {}),
  };
  return { info, supportedChains: declared?.supportedChains ?? [], schema: declared!.schema };
}

/** What a client signs for one of the challenge's chains (for clients and tests). */
export function completeInfo(challenge: SIWxExtension, chainId: string): CompleteSIWxInfo {
  const chain = challenge.supportedChains.find((c) => c.chainId === chainId);
  if (!chain) throw new Error(`the challenge does not offer ${chainId}`);
  return { ...challenge.info, chainId: chain.chainId, type: chain.type };
}

export class SignInGate {
  private readonly nonces = new NonceMemory();

  constructor(private readonly now: () => number = Date.now) {}

  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    publicBase: string,
    proxy: ProxyFn,
  ): Promise<void> {
    const origin = new URL(publicBase);
    const raw = req.headers[SIGN_IN_WITH_X];
    const header = Array.isArray(raw) ? raw[0] : raw;
    const now = this.now();
    const verdict = await decideSignIn(
      header,
      { origin, resourceUrl: route.resourceUrl, networks: signInNetworks(offer.spec) },
      this.nonces,
      now,
    );
    if (verdict.ok && this.nonces.remember(verdict.nonce, verdict.forgetAt, now)) {
      // The upstream learns who signed in from the gateway only.
      req.headers[SIGNED_IN_ADDRESS_HEADER] = verdict.address;
      await proxy({ stripRequestHeaders: [SIGN_IN_WITH_X] });
      return;
    }
    const refusal = verdict.ok
      ? { reason: "sign_in_busy", message: "too many sign-ins at once; sign a new challenge shortly" }
      : verdict;
    req.resume();
    const challenge = signInChallenge(offer, origin, route.resourceUrl, now);
    const required: PaymentRequired = {
      x402Version: 2,
      error: refusal.reason,
      resource: { url: route.resourceUrl, description: `Sign in to ${offer.name}`, mimeType: "" },
      accepts: [],
      extensions: { [SIGN_IN_WITH_X]: challenge },
    };
    const body = JSON.stringify({ error: refusal.reason, message: refusal.message, ...required });
    res.writeHead(401, {
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "cache-control": "no-store",
      "www-authenticate": `${SIGN_IN_WITH_X} realm="${origin.host}"`,
      "payment-required": encodePaymentRequiredHeader(required),
    });
    res.end(body);
  }
}
