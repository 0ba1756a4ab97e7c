/**
 * Voucher signers recovered on a worker thread, so the gateway's event loop does not spend a
 * recovery's CPU (libsecp256k1, ~0.1 ms a voucher here, the largest single cost of a channel
 * payment after the proxying) between serving requests.
 *
 * The recoveries travel through memory shared with the worker, one batch at a time: the loop
 * writes the batch's records and its count, stores the batch's number and wakes the worker
 * (Atomics.notify); the worker, asleep in Atomics.wait, writes the answers, stores the number
 * back and wakes the loop, which waits with Atomics.waitAsync. No message crosses: a
 * `postMessage` each way cost the loop a serialization and a message event per batch (measured:
 * ~70 µs of CPU a round trip against ~52 this way). Recoveries asked for while a batch is out wait
 * for it and go together as the next one, so the busier the gateway, the larger the batches.
 *
 * It answers what `recoverSigner` answers, never throws, and degrades rather than fails: without
 * the native bindings it answers undefined (the voucher goes to the library's check); if the
 * worker cannot start or dies, the recoveries waiting on it and every later one are made on the
 * loop itself (`recoverSigner`). docs/adr/0008-channel-payment-cpu.md.
 */
import { Worker } from "node:worker_threads";
import type { Address } from "viem";
import { addressOfPublicKey, nativeSecp256k1, recoverSigner, signatureParts } from "./voucherSignature";

/** One recovery: digest (32) ‖ r ‖ s (64) ‖ recovery id (1). */
const RECORD_BYTES = 97;
/** One answer: found (1) ‖ the public key's point, x ‖ y (64). */
const ANSWER_BYTES = 65;
/** Recoveries in one batch at most (more wait for the next). */
const BATCH_LIMIT = 512;
/**
 * The shared memory's control words (Int32): the batch sent last (loop → worker), the batch
 * answered last (worker → loop), the records in the batch sent, and a stop flag.
 */
const SENT = 0;
const ANSWERED = 1;
const COUNT = 2;
const STOP = 3;
const RECORDS_AT = 16;
const ANSWERS_AT = RECORDS_AT + BATCH_LIMIT * RECORD_BYTES;
const SHARED_BYTES = ANSWERS_AT + BATCH_LIMIT * ANSWER_BYTES;

/**
 * The worker, as CommonJS source: it loads the same prebuilt binding by absolute path (it runs
 * without the gateway's TypeScript loader), sleeps until a batch is sent and recovers each
 * record's public key; the loop turns keys into addresses (`addressOfPublicKey`, which remembers
 * them: a channel's vouchers share one). A record it cannot recover is answered "not found". The
 * batch's number is stored with Atomics after the answers, and read with Atomics before them, so
 * neither side reads the other's bytes before they are all written.
 */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const secp256k1 = require(workerData.secp256k1);
const shared = workerData.shared;
const bytes = new Uint8Array(shared);
const words = new Int32Array(shared, 0, 4);
let seen = 0;
for (;;) {
  Atomics.wait(words, ${SENT}, seen);
  if (Atomics.load(words, ${STOP}) === 1) break;
  const batch = Atomics.load(words, ${SENT});
  if (batch === seen) continue;
  seen = batch;
  const count = words[${COUNT}];
  for (let i = 0; i < count; i++) {
    const at = ${RECORDS_AT} + i * ${RECORD_BYTES};
    const answer = ${ANSWERS_AT} + i * ${ANSWER_BYTES};
    bytes[answer] = 0;
    try {
      const key = secp256k1.ecdsaRecover(
        bytes.slice(at + 32, at + 96), bytes[at + 96], bytes.slice(at, at + 32), false);
      bytes.set(key.subarray(1, 65), answer + 1);
      bytes[answer] = 1;
    } catch {}
  }
  Atomics.store(words, ${ANSWERED}, batch);
  Atomics.notify(words, ${ANSWERED});
}
`;

interface Waiting {
  readonly digest: Uint8Array;
  readonly signature: string;
  readonly rs: Buffer;
  readonly recoveryId: number;
  readonly resolve: (address: Address | undefined) => void;
}

export interface SignerRecoveryOptions {
  /** Told when the worker fails and recoveries move to the loop (logs). */
  onFailure?: (err: unknown) => void;
  /** Told of each batch answered by the worker and each recovery made on the loop (metrics). */
  onRecovered?: (where: "worker" | "loop", count: number) => void;
}

export class SignerRecovery {
  private worker: Worker | undefined;
  private shared: Uint8Array | undefined;
  private words: Int32Array | undefined;
  /** Whether recoveries are made on the loop (no worker, or it failed). */
  private inline = false;
  private queue: Waiting[] = [];
  /** The batch the worker has (one at a time); its number is `stats.batches`. */
  private out: Waiting[] | undefined;
  private scheduled = false;
  /** Recoveries answered by the worker, the batches they took, and those made on the loop. */
  readonly stats = { onWorker: 0, batches: 0, onLoop: 0 };

  constructor(private readonly opts: SignerRecoveryOptions = {}) {}

  /** Recovered with `recoverSigner`'s rules; undefined for anything it would not recover. */
  recover(digest: Uint8Array, signature: string): Promise<Address | undefined> {
    const parts = signatureParts(signature);
    if (!parts || !nativeSecp256k1 || digest.length !== 32) return Promise.resolve(undefined);
    if (this.inline || !this.started()) return Promise.resolve(this.onLoop(digest, signature));
    return new Promise((resolve) => {
      this.queue.push({ digest, signature, rs: parts.rs, recoveryId: parts.recoveryId, resolve });
      // The first of a turn schedules the send; while a batch is out, its answer sends the next.
      if (!this.scheduled && !this.out) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.send();
        });
      }
    });
  }

  /** Stops the worker; waiting recoveries are answered on the loop. */
  async close(): Promise<void> {
    await this.fallBack();
  }

  private started(): boolean {
    if (this.worker) return true;
    try {
      const shared = new SharedArrayBuffer(SHARED_BYTES);
      this.worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { shared, secp256k1: require.resolve("secp256k1/bindings") },
      });
      this.shared = new Uint8Array(shared);
      this.words = new Int32Array(shared, 0, 4);
    } catch (err) {
      this.opts.onFailure?.(err);
      void this.fallBack();
      return false;
    }
    // Idle, the worker must not keep the process alive.
    this.worker.unref();
    this.worker.on("error", (err) => {
      this.opts.onFailure?.(err);
      void this.fallBack();
    });
    this.worker.on("exit", () => void this.fallBack());
    return true;
  }

  /** Sends the next batch from the queue, if none is out. */
  private send(): void {
    if (this.out || this.queue.length === 0) return;
    const { worker, shared, words } = this;
    if (!worker || !shared || !words || this.inline) {
      for (const w of this.queue.splice(0)) w.resolve(this.onLoop(w.digest, w.signature));
      return;
    }
    const batch = this.queue.splice(0, BATCH_LIMIT);
    batch.forEach((w, i) => {
      const at = RECORDS_AT + i * RECORD_BYTES;
      shared.set(w.digest, at);
      shared.set(w.rs, at + 32);
      shared[at + 96] = w.recoveryId;
    });
    this.out = batch;
    const previous = this.stats.batches | 0;
    this.stats.batches++;
    const number = this.stats.batches | 0;
    words[COUNT] = batch.length;
    // Waiting from before the wake-up: an answer that comes first is seen as "not-equal".
    const answered = Atomics.waitAsync(words, ANSWERED, previous);
    Atomics.store(words, SENT, number);
    Atomics.notify(words, SENT);
    if (answered.async) void answered.value.then(() => this.answer(number));
    else queueMicrotask(() => this.answer(number));
  }

  private answer(batchNumber: number): void {
    const { out: batch, shared, words } = this;
    // Stopped meanwhile: whatever was out was answered on the loop (fallBack cleared `out`).
    if (!batch || !shared || !words) return;
    // Pairs with the worker's store: its answers are all visible from here on. (Anything else
    // would be a broken worker: the loop takes over rather than wait for it.)
    if (batchNumber !== (this.stats.batches | 0) || Atomics.load(words, ANSWERED) !== batchNumber) {
      this.opts.onFailure?.(new Error(`the signature worker answered batch ${batchNumber} out of order`));
      void this.fallBack();
      return;
    }
    this.out = undefined;
    this.stats.onWorker += batch.length;
    this.opts.onRecovered?.("worker", batch.length);
    const view = Buffer.from(shared.buffer, shared.byteOffset, shared.byteLength);
    batch.forEach((w, i) => {
      const at = ANSWERS_AT + i * ANSWER_BYTES;
      w.resolve(view[at] === 1 ? addressOfPublicKey(view.subarray(at + 1, at + ANSWER_BYTES)) : undefined);
    });
    this.send();
  }

  /**
   * From now on recoveries are made on the loop, those waiting on the worker included; the
   * worker is stopped (resolves when it has).
   */
  private async fallBack(): Promise<void> {
    const worker = this.worker;
    if (!this.inline) {
      this.inline = true;
      this.worker = undefined;
      const waiting = [...(this.out ?? []), ...this.queue];
      this.out = undefined;
      this.queue = [];
      for (const w of waiting) w.resolve(this.onLoop(w.digest, w.signature));
    }
    // Woken to see the stop flag (it may be asleep in Atomics.wait), then stopped.
    if (this.words) {
      Atomics.store(this.words, STOP, 1);
      Atomics.notify(this.words, SENT);
    }
    await worker?.terminate();
  }

  private onLoop(digest: Uint8Array, signature: string): Address | undefined {
    this.stats.onLoop++;
    this.opts.onRecovered?.("loop", 1);
    return recoverSigner(digest, signature);
  }
}
