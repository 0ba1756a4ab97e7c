/**
 * The `upto` scheme at the gate: a metered request is read first (its `max_tokens` sizes the
 * maximum the buyer signs), and the upstream's answer decides the charge, so the settlement follows
 * the body. A JSON answer is read whole, settled, then sent with PAYMENT-RESPONSE (withheld, like
 * `exact`, when settlement fails). A stream is passed on as it comes, its usage chunk noted, and
 * settled at its end; the receipt is then an HTTP trailer, PAYMENT-RESPONSE. A non-2xx answer is
 * passed on and not charged.
 */
import { once } from "node:events";
import type * as http from "node:http";
import type { PaymentRequirements } from "@x402/core/types";
import { type UptoCharge, uptoCharge, uptoTokenCap } from "../../api/pricing";
import { GateResponse, type ProxyOutcome, type RelayedResponse } from "../gateway/paymentGate";
import { stripHopByHop } from "../gateway/proxy";
import type { HeldOffer } from "../gateway/routing";
import { type MeteredRequest, readMeteredRequest, SseUsage, usageFromJson } from "./metering";
import { finished, readAll, readBounded } from "./requestBody";
import { offerPayments, type UptoTerms } from "./requirements";

/** An `upto` offer reads the request body (to size the maximum) up to this many bytes. */
export const MAX_METERED_REQUEST_BYTES = 1 << 20;

/** A non-streamed metered answer is read whole (for its usage) up to this many bytes. */
const MAX_METERED_RESPONSE_BYTES = 32 << 20;

/** A request to an `upto` offer: its body as read (and as sent upstream) and its token cap. */
export interface MeteredCall {
  /** The request's body as received. */
  readonly raw: Buffer;
  readonly request: MeteredRequest;
  readonly tokenCap: bigint;
  readonly terms: UptoTerms;
}

/**
 * Reads the body of a request to an `upto` offer (bounded) and sizes its maximum; `facilitators`
 * are the facilitator's upto signers per network (from its /supported). A facilitator without
 * upto leaves the 402 at `exact`.
 */
export async function readMeteredCall(
  req: http.IncomingMessage,
  facilitators: ReadonlyMap<string, string>,
): Promise<MeteredCall | "too_large"> {
  const raw = await readBounded(req, MAX_METERED_REQUEST_BYTES);
  if (raw === "too_large") return raw;
  const request = readMeteredRequest(raw);
  const tokenCap = uptoTokenCap({ maxTokens: request.maxTokens, bodyBytes: raw.length });
  return { raw, request, tokenCap, terms: { tokenCap, facilitators } };
}

/** How a metered answer is charged and kept. */
export interface MeteredAnswerOptions {
  readonly offer: HeldOffer;
  /** The verified payment's requirement (its amount is the signed maximum). */
  readonly requirement: PaymentRequirements;
  readonly metered: MeteredCall;
  /** Settles the charge and returns the receipt header, or throws the response replacing the answer. */
  readonly settle: (charge: UptoCharge) => Promise<Record<string, string>>;
  /** Keep the answer (for retries of an identified payment) when at most this many bytes. */
  readonly keepUpTo?: number;
}

export type MeteredAnswer = ProxyOutcome & { settled: boolean; receipt: Record<string, string> };

/** Relays the upstream's answer to a verified upto payment and settles what it used. */
export async function respondMetered(
  upstream: http.IncomingMessage,
  res: http.ServerResponse,
  opts: MeteredAnswerOptions,
): Promise<MeteredAnswer> {
  const { offer, requirement, metered, keepUpTo } = opts;
  const status = upstream.statusCode ?? 502;
  const headers = stripHopByHop(upstream.headers);
  if (status < 200 || status >= 300) {
    res.writeHead(status, headers);
    upstream.pipe(res);
    await finished(res);
    return {
      status,
      completed: res.writableFinished,
      clientAborted: !res.writableFinished,
      settled: false,
      receipt: {},
    };
  }
  const priced = offerPayments(offer.spec).find(
    (p) =>
      p.network === requirement.network && p.asset.address.toLowerCase() === requirement.asset.toLowerCase(),
  );
  if (!priced) throw new Error(`no payment option of ${offer.name} matches the verified requirement`);
  const maximum = BigInt(requirement.amount);
  const charge = (tokens: bigint | undefined) => uptoCharge(priced, maximum, metered.tokenCap, tokens);
  const streaming = /^text\/event-stream/i.test(String(upstream.headers["content-type"] ?? ""));
  delete headers["content-length"];
  if (!streaming) {
    const body = await readAll(upstream, MAX_METERED_RESPONSE_BYTES, "a metered (upto) answer is read whole");
    const receipt = await opts.settle(charge(usageFromJson(body)));
    const sent = { ...headers, ...receipt, "content-length": String(body.length) };
    res.writeHead(status, sent);
    res.end(body);
    await finished(res);
    const kept: RelayedResponse | "too_large" | undefined =
      keepUpTo !== undefined && res.writableFinished
        ? body.length > keepUpTo
          ? "too_large"
          : { status, headers: sent, body }
        : undefined;
    return {
      status,
      completed: res.writableFinished,
      clientAborted: !res.writableFinished,
      settled: true,
      receipt,
      ...(kept ? { kept } : {}),
    };
  }
  res.writeHead(status, { ...headers, trailer: "PAYMENT-RESPONSE" });
  res.flushHeaders();
  const usage = new SseUsage();
  // A copy of the stream for a retry of the same payment, while it stays under the bound.
  let copy: Buffer[] | undefined = keepUpTo !== undefined ? [] : undefined;
  let copied = 0;
  try {
    for await (const chunk of upstream) {
      usage.push(chunk as Buffer);
      if (copy) {
        copied += (chunk as Buffer).length;
        if (copied > (keepUpTo ?? 0)) copy = undefined;
        else copy.push(chunk as Buffer);
      }
      if (!res.write(chunk)) await Promise.race([once(res, "drain"), once(res, "close")]);
      if (res.destroyed) break;
    }
  } catch {
    // The upstream broke off: what it reported so far (usually nothing) decides the charge.
  }
  // Settled even when the buyer hung up: the upstream did the work up to then.
  const due = charge(usage.end());
  let receipt: Record<string, string>;
  let settled = true;
  try {
    receipt = await opts.settle(due);
  } catch (err) {
    // The stream was delivered; the failure is logged and counted by the settler.
    settled = false;
    receipt = err instanceof GateResponse ? pick(err.headers, "payment-response") : {};
  }
  if (!res.destroyed) {
    res.addTrailers(receipt);
    res.end();
    await finished(res);
  }
  const completed = res.writableFinished;
  return {
    status,
    completed,
    clientAborted: !completed,
    settled,
    receipt,
    // Kept whole: the receipt, a trailer here, is a header in the retry's answer.
    ...(keepUpTo !== undefined && completed
      ? {
          kept: copy
            ? { status, headers: { ...headers, ...receipt }, body: Buffer.concat(copy) }
            : "too_large",
        }
      : {}),
  };
}

function pick(headers: Record<string, string>, name: string): Record<string, string> {
  const value = headers[name];
  return value === undefined ? {} : { [name]: value };
}
