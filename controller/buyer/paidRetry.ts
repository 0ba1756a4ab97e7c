/**
 * Safe retries of a paid request (x402 `payment-identifier`). The buyer puts one identifier in
 * each payment; when the answer to the paid request is lost (the connection failed before a
 * response came), it sends the same request with the same payment again. A seller that declared
 * the extension answers that retry from the response it kept, without settling or serving twice;
 * any other seller refuses it as a replay. Nothing new is signed for a retry.
 */
import { decodePaymentSignatureHeader } from "@x402/core/http";
import { extractPaymentIdentifier } from "@x402/extensions/payment-identifier";
import { errorMessage, type LogFn } from "../shared/log";

export interface PaidRetryOptions {
  /** Sends in all, the first included (default 3). */
  readonly attempts?: number;
  /** Before the n-th retry, n times this (default 500 ms). */
  readonly backoffMs?: number;
  readonly log: LogFn;
}

/** The identifier a PAYMENT-SIGNATURE header carries, if any. Pure. */
export function paymentIdentifierOf(header: string | null): string | undefined {
  if (!header) return undefined;
  try {
    return extractPaymentIdentifier(decodePaymentSignatureHeader(header)) ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * `fetch` for @x402/fetch's wrapper: a request carrying an identified payment is sent again, as
 * it was, when no answer came back; every other request is sent once.
 */
export function retryingPaidFetch(send: typeof fetch, opts: PaidRetryOptions): typeof fetch {
  const attempts = opts.attempts ?? 3;
  const backoffMs = opts.backoffMs ?? 500;
  return async (input, init) => {
    const request = new Request(input, init);
    const id = paymentIdentifierOf(request.headers.get("payment-signature"));
    if (id === undefined) return send(request);
    for (let attempt = 1; ; attempt++) {
      try {
        // A copy per send: a body can be read once.
        return await send(request.clone());
      } catch (err) {
        if (attempt >= attempts) throw err;
        opts.log("buyer: the answer to a paid request was lost; sending the same payment again", {
          level: "warn",
          paymentId: id,
          attempt,
          error: err instanceof Error && err.cause instanceof Error ? err.cause.message : errorMessage(err),
        });
        await new Promise((resolve) => setTimeout(resolve, backoffMs * attempt));
      }
    }
  };
}
