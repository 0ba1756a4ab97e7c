/**
 * Voucher signers recovered on a worker thread (signerRecovery.ts): the same answers as the
 * event loop's `recoverSigner`, for good and bad signatures mixed in one batch, recoveries asked
 * for together sent together, and recoveries in flight answered when the worker is stopped.
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { SignerRecovery } from "../../controller/payments/signerRecovery";
import { recoverSigner, voucherDigest } from "../../controller/payments/voucherSignature";

const signers = Array.from({ length: 4 }, () => privateKeyToAccount(toHex(randomBytes(32))));

/** `count` digests, each signed by one of `signers`, and every fifth signature spoiled. */
async function vouchers(count: number): Promise<{ digest: Uint8Array; signature: string }[]> {
  const out: { digest: Uint8Array; signature: string }[] = [];
  for (let i = 0; i < count; i++) {
    const digest = voucherDigest(84532, toHex(randomBytes(32)), BigInt(i + 1));
    assert.ok(digest);
    const signer = signers[i % signers.length];
    assert.ok(signer);
    let signature: string = await signer.sign({ hash: toHex(digest) });
    if (i % 5 === 1)
      signature = `${signature.slice(0, 20)}${signature[20] === "0" ? "1" : "0"}${signature.slice(21)}`;
    if (i % 5 === 2) signature = signature.slice(0, 130); // the 64-byte form: not recovered natively
    if (i % 5 === 3) signature = "0xzz";
    out.push({ digest, signature });
  }
  return out;
}

describe("signer recovery on a worker thread", () => {
  it("answers what recoverSigner answers, for recoveries asked for together, in fewer batches (wake-ups)", async () => {
    const recovery = new SignerRecovery();
    try {
      const batch = await vouchers(60);
      const answers = await Promise.all(batch.map((v) => recovery.recover(v.digest, v.signature)));
      assert.deepEqual(
        answers,
        batch.map((v) => recoverSigner(v.digest, v.signature)),
      );
      // The good ones were recovered, and to their signers.
      assert.equal(answers[0], signers[0]?.address.toLowerCase());
      assert.ok(answers.filter((a) => a !== undefined).length >= 24);
      // Forms the native path does not take are answered without the worker.
      assert.ok(
        recovery.stats.onWorker >= 36 && recovery.stats.onWorker <= 48,
        JSON.stringify(recovery.stats),
      );
      assert.ok(recovery.stats.batches < recovery.stats.onWorker / 4, JSON.stringify(recovery.stats));
      assert.equal(recovery.stats.onLoop, 0);
      // And one at a time, later.
      for (const v of batch.slice(0, 5))
        assert.equal(await recovery.recover(v.digest, v.signature), recoverSigner(v.digest, v.signature));
    } finally {
      await recovery.close();
    }
  });

  it("answers recoveries in flight when stopped, and later ones on the event loop", async () => {
    const recovery = new SignerRecovery();
    const batch = await vouchers(40);
    // Half sent to the worker (its message posted), half still waiting for the next turn.
    const pending = batch.slice(0, 20).map((v) => recovery.recover(v.digest, v.signature));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(recovery.stats.batches, 1);
    pending.push(...batch.slice(20).map((v) => recovery.recover(v.digest, v.signature)));
    await recovery.close();
    const expected = batch.map((v) => recoverSigner(v.digest, v.signature));
    assert.deepEqual(await Promise.all(pending), expected);
    const later = await Promise.all(batch.map((v) => recovery.recover(v.digest, v.signature)));
    assert.deepEqual(later, expected);
    assert.ok(recovery.stats.onLoop >= 24, JSON.stringify(recovery.stats));
  });
});
