import * as assert from "node:assert/strict";
import { isNonceConflict, SendQueue } from "../../controller/facilitator/sendQueue";

/** A node that counts accepted transactions and refuses a nonce that is not the next one. */
function fakeNode(opts: { lagging?: boolean } = {}) {
  const accepted: number[] = [];
  return {
    accepted,
    // A lagging RPC reports the count from before our last send.
    pendingNonce: async () => (opts.lagging ? Math.max(0, accepted.length - 1) : accepted.length),
    async send(nonce: number) {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      if (nonce < accepted.length) throw new Error(`nonce too low: next nonce ${accepted.length}`);
      if (nonce > accepted.length) throw new Error(`nonce gap: ${nonce}`);
      accepted.push(nonce);
      return `0x${nonce.toString(16)}`;
    },
  };
}

describe("facilitator send queue", () => {
  it("gives 40 concurrent sends consecutive nonces, none refused", async () => {
    const node = fakeNode();
    const queue = new SendQueue({ pendingNonce: node.pendingNonce });
    const hashes = await Promise.all(Array.from({ length: 40 }, () => queue.run((n) => node.send(n))));
    assert.deepEqual(
      node.accepted,
      Array.from({ length: 40 }, (_, i) => i),
    );
    assert.equal(new Set(hashes).size, 40);
  });

  it("keeps its own count when the RPC lags behind its last send", async () => {
    const node = fakeNode({ lagging: true });
    const queue = new SendQueue({ pendingNonce: node.pendingNonce });
    await Promise.all(Array.from({ length: 10 }, () => queue.run((n) => node.send(n))));
    assert.equal(node.accepted.length, 10);
  });

  it("retries a send the node refused for its nonce (another sender took it)", async () => {
    const node = fakeNode();
    const queue = new SendQueue({ pendingNonce: node.pendingNonce });
    await queue.run((n) => node.send(n));
    let stolen = false;
    const hash = await queue.run(async (n) => {
      if (!stolen) {
        stolen = true;
        node.accepted.push(n); // someone else used the key meanwhile
      }
      return node.send(n);
    });
    assert.equal(hash, "0x2");
  });

  it("passes other failures on, and the next send starts from the node's count", async () => {
    const node = fakeNode();
    const queue = new SendQueue({ pendingNonce: node.pendingNonce });
    await assert.rejects(
      queue.run(async () => {
        throw new Error("execution reverted: authorization is used");
      }),
      /authorization is used/,
    );
    assert.equal(await queue.run((n) => node.send(n)), "0x0");
  });

  it("recognises nonce conflicts in viem's nested errors only", () => {
    assert.ok(isNonceConflict({ shortMessage: "x", cause: { details: "nonce too low" } }));
    assert.ok(isNonceConflict(new Error("replacement transaction underpriced")));
    assert.ok(!isNonceConflict(new Error("execution reverted")));
    assert.ok(!isNonceConflict(undefined));
  });
});
