/**
 * One signing key, many settlements at once: transactions from the facilitator's key are sent
 * one at a time, each with an explicit nonce. Without this, concurrent settlements each ask the
 * node for the pending nonce, get the same one, and all but one fail with "nonce too low" (or
 * replace each other) after the upstream has already done the work.
 *
 * Only the send is serialized (estimate, sign, eth_sendRawTransaction: a few RPC round trips);
 * waiting for receipts stays concurrent, so settlement latency grows by milliseconds per queued
 * payment, not by block times.
 */

/** How often a send refused for its nonce is retried with a fresh one. */
const NONCE_RETRIES = 3;

export interface SendQueueOptions {
  /** The key's next nonce as the node sees it, counting pending transactions. */
  pendingNonce(): Promise<number>;
}

export class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** The nonce after our last accepted send; unknown after a failure (the node decides again). */
  private next: number | undefined;

  constructor(private readonly opts: SendQueueOptions) {}

  /** Runs `send` with the next nonce, after every earlier send has been handed to the node. */
  run<T>(send: (nonce: number) => Promise<T>): Promise<T> {
    const result = this.tail.then(() => this.sendWithRetry(send));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async sendWithRetry<T>(send: (nonce: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // Ours and the node's view: a load-balanced RPC may lag behind our own last send, and
      // another process using the key moves the node's count past ours.
      const pending = await this.opts.pendingNonce();
      const nonce = this.next === undefined ? pending : Math.max(pending, this.next);
      try {
        const sent = await send(nonce);
        this.next = nonce + 1;
        return sent;
      } catch (err) {
        // A failed send does not prove the nonce unused (the node may have taken it before a
        // timeout): forget ours, so the next send starts from the node's count.
        this.next = undefined;
        if (!isNonceConflict(err) || attempt >= NONCE_RETRIES) throw err;
      }
    }
  }
}

/** The node refused the transaction for its nonce, so nothing was sent: safe to retry. */
export function isNonceConflict(err: unknown): boolean {
  const text = messages(err).join("\n").toLowerCase();
  return (
    text.includes("nonce too low") ||
    text.includes("nonce has already been used") ||
    text.includes("replacement transaction underpriced")
  );
}

function messages(err: unknown, depth = 0): string[] {
  if (depth > 5 || typeof err !== "object" || err === null) return err === undefined ? [] : [String(err)];
  const e = err as { message?: unknown; details?: unknown; shortMessage?: unknown; cause?: unknown };
  return [
    ...[e.message, e.details, e.shortMessage].filter((m): m is string => typeof m === "string"),
    ...messages(e.cause, depth + 1),
  ];
}
