/**
 * The release journey on the real node (tests/harness/journey.ts, the same steps `npm run demo`
 * prints): Alice's stack sells and registers an ERC-8004 agent on anvil; Bob's stack, in another
 * namespace of the same cluster, buys from her by agent id through his LiteLLM and buyer; the
 * chain, Alice's gateway and facilitator, and Bob's ledger and PurchaseRequest agree on every
 * payment, each counted once.
 */
import * as assert from "node:assert/strict";
import { scratchDir, sharedRealCluster } from "../../harness/env";
import { ensureImages, type ImageName, type LocalImage } from "../../harness/images";
import {
  type AgentCalls,
  JOURNEY_IMAGES,
  Journey,
  lineReporter,
  MODEL,
  OFFER,
  PRICE_ATOMIC,
} from "../../harness/journey";

describe("the journey on a real node: Alice sells and registers, Bob buys by agent id", function () {
  this.timeout(40 * 60_000);
  const progress: string[] = [];
  let journey: Journey;
  // Each step runs once, when the first test that needs it asks: every test stands alone (run
  // with --grep, or in any order) and the whole file still brings each stack up only once.
  let sellerStep: ReturnType<Journey["sellerUp"]> | undefined;
  let buyerStep: ReturnType<Journey["buyerUp"]> | undefined;
  let paidStep:
    | Promise<{ fromBlock: bigint; balancesBefore: { seller: bigint; buyer: bigint }; calls: AgentCalls }>
    | undefined;
  const aliceUp = () => (sellerStep ??= journey.sellerUp());
  const bobUp = () => (buyerStep ??= aliceUp().then((agent) => journey.buyerUp(agent.agentRef)));
  const agentPays = () =>
    (paidStep ??= bobUp().then(async () => {
      const fromBlock = (await journey.chain.client.getBlockNumber()) + 1n;
      const balancesBefore = await journey.balances();
      return { fromBlock, balancesBefore, calls: await journey.agentCalls() };
    }));

  before(async () => {
    const cluster = await sharedRealCluster(JOURNEY_IMAGES);
    const images = (await ensureImages({ only: JOURNEY_IMAGES })) as Record<ImageName, LocalImage>;
    journey = new Journey({
      cluster,
      images,
      dir: scratchDir("journey"),
      suffix: String(process.pid),
      report: lineReporter((line) => progress.push(line)),
    });
    await journey.prepare();
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.error(progress.join("\n"));
  });

  after(async () => {
    await journey?.teardown().catch((err) => console.error(`teardown: ${err}`));
  });

  it("Alice's stack comes up, registers one agent on the IdentityRegistry whose tokenURI is her registration document", async () => {
    const agent = await aliceUp();
    assert.match(agent.agentId, /^[0-9]+$/);
    assert.equal(agent.offerUrl, `http://x402-gateway.${journey.ns.alice}.svc:8080/services/${OFFER}`);
    const tokenURI = await journey.chain.client.readContract({
      address: journey.registry,
      abi: [
        {
          type: "function",
          name: "tokenURI",
          stateMutability: "view",
          inputs: [{ name: "tokenId", type: "uint256" }],
          outputs: [{ type: "string" }],
        },
      ],
      functionName: "tokenURI",
      args: [BigInt(agent.agentId)],
    });
    assert.equal(tokenURI, agent.registrationUrl);
  });

  it("Bob's stack, buying by agent id, resolves it to Alice's offer (no URL in his config)", async () => {
    const status = await bobUp();
    assert.equal(status.endpoint, (await aliceUp()).offerUrl);
    assert.equal(status.spentTotal ?? "0", "0");
  });

  it("an agent pod pays Alice through Bob's LiteLLM and buyer: plain and streamed, then refused past maxTotal", async () => {
    const { calls } = await agentPays();

    assert.equal(calls.unpaid.status, 402, "Alice's offer asks for payment");
    const accepts = calls.unpaid.paymentRequired?.accepts?.[0];
    assert.equal(accepts?.amount, PRICE_ATOMIC.toString());
    assert.equal(accepts?.payTo, journey.seller);

    assert.equal(calls.plain.status, 200, calls.plain.body);
    assert.equal(calls.plain.content, `model ${MODEL} answers: hello from Bob's agent`);

    assert.equal(calls.streamed.status, 200);
    assert.equal(
      calls.streamed.content,
      `model ${MODEL} answers: stream ${Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ")}`,
    );
    assert.ok(calls.streamed.done, "the stream ends with [DONE]");
    assert.ok(
      calls.streamed.reads >= 2,
      `the SSE events arrived incrementally, not as one buffered body (${calls.streamed.reads} reads)`,
    );

    assert.notEqual(calls.overBudget.status, 200, calls.overBudget.body);
    assert.match(calls.overBudget.body, /over_max_total|maxTotal/, "the agent sees why");
  });

  it("the chain moved each payment exactly once, and Alice's and Bob's records agree with it", async () => {
    const { fromBlock, balancesBefore } = await agentPays();
    const settled = await journey.settlements(fromBlock);
    assert.equal(settled.length, 2, "two Transfers into Alice's payTo: the plain and the streamed call");
    for (const s of settled) {
      assert.equal(s.amount, PRICE_ATOMIC);
      assert.equal(s.from, journey.buyer);
    }
    const after = await journey.balances();
    assert.equal(after.seller - balancesBefore.seller, 2n * PRICE_ATOMIC);
    assert.equal(
      balancesBefore.buyer - after.buyer,
      2n * PRICE_ATOMIC,
      "nothing was paid for the refused call",
    );

    const { seller, buyer } = await journey.records(2);
    assert.deepEqual(seller, {
      gatewaySettled: 2,
      gatewayReceived: 2n * PRICE_ATOMIC,
      facilitatorSettled: 2,
      facilitatorAmount: 2n * PRICE_ATOMIC,
    });
    assert.equal(buyer.status.requests, 2);
    assert.equal(buyer.status.spentTotal, "0.002");
    assert.deepEqual(
      buyer.ledger.map((e) => [e.tx?.toLowerCase(), e.amount]).sort(),
      settled.map((s) => [s.txHash.toLowerCase(), s.amount]).sort(),
      "the buyer's ledger names the same transactions and amounts",
    );
  });
});
