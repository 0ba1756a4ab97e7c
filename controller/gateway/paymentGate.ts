/**
 * The seam between routing and payment. For a paid route the gateway calls
 * `PaymentGate.handle(req, res, offer, route, proxy)`; the gate decides whether to answer
 * (402, 400, 503 …) or to call `proxy()` to forward the request upstream. `proxy` streams both
 * ways and lets the gate act between the upstream's response head and the client seeing it
 * (`beforeResponse`): that is where an x402 gate settles only after a 2xx and adds the
 * PAYMENT-RESPONSE header. Free routes never reach the gate.
 */
import type * as http from "node:http";
import type { HeldOffer, RouteDecision } from "./routing";

export interface UpstreamHead {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * Thrown from `beforeResponse` to answer the client with this response instead of the
 * upstream's (e.g. a 402 when settlement failed): the upstream body is discarded.
 */
export class GateResponse extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: string,
  ) {
    super(`gate answered ${status}`);
  }
}

export interface ProxyOptions {
  /**
   * Runs after the upstream answered and before anything is written to the client. Returned
   * headers are added to the response. Throwing aborts the response with a 502.
   */
  beforeResponse?(
    head: UpstreamHead,
  ): Promise<Record<string, string> | undefined> | Record<string, string> | undefined;
  /** Request headers not to forward upstream (e.g. the payment signature). Lowercase names. */
  readonly stripRequestHeaders?: readonly string[];
  /** The request body to send instead of the client's (already read by the gate). */
  readonly body?: Buffer;
  /**
   * Takes over the upstream's response instead of relaying it (and instead of
   * `beforeResponse`): the metered `upto` path reads the usage before or while answering and
   * settles after it. Throwing a GateResponse before writing answers with it instead.
   */
  respond?(upstream: http.IncomingMessage, res: http.ServerResponse): Promise<ProxyOutcome>;
  /**
   * Keep a copy of the relayed answer (head as sent, and body up to this many bytes) in the
   * outcome's `kept`: a paid request's answer, for a retry of the same payment (idempotency).
   */
  readonly keep?: number;
}

/** An answer as it was sent to the client. */
export interface RelayedResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

export interface ProxyOutcome {
  /** Status sent to the client (502/504 when the upstream failed). */
  readonly status: number;
  /** True when the whole response body reached the client. */
  readonly completed: boolean;
  /** True when the client went away before the response finished. */
  readonly clientAborted: boolean;
  /** Why the upstream call failed, when it did. */
  readonly error?: string;
  /** With `keep`: the whole answer, or "too_large" when its body was over the bound. */
  readonly kept?: RelayedResponse | "too_large";
}

export type ProxyFn = (options?: ProxyOptions) => Promise<ProxyOutcome>;

/** The matched route of a request, as the gate sees it. */
export interface GatedRoute extends RouteDecision {
  /** Path below the offer's path, e.g. "/v1/chat/completions". */
  readonly subPath: string;
  /** Absolute public URL of the requested resource (for x402 `resource`). */
  readonly resourceUrl: string;
}

export interface PaymentGate {
  /** Shown in the gateway's route report (PaymentGateReady message). */
  readonly name: string;
  handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    proxy: ProxyFn,
  ): Promise<void>;
}
