/**
 * The release journey on the real node (tests/harness/journey.ts, the same steps `npm run demo`
 * prints): Alice's stack sells and registers an ERC-8004 agent on anvil; Bob's stack, in another
 * namespace of the same cluster, buys from her by agent id through his LiteLLM and buyer; the
 * chain, Alice's gateway and facilitator, and Bob's ledger and PurchaseRequest agree on every
 * payment, each counted once. Then the whole cluster is lost, and `pulumi up` of both stacks alone
 * brings the journey back with nothing lost: the same agent, and the spend read back from the chain.
 */
import * as assert from "node:assert/strict";
import { at } from "../../harness/assertions";
import { recreateSharedRealCluster, scratchDir, sharedRealCluster } from "../../harness/env";
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
  let resumeStep: ReturnType<typeof loseAndResume> | undefined;
  let budgetStep: ReturnType<typeof raiseBudget> | undefined;
  const aliceUp = () => (sellerStep ??= journey.sellerUp());
  const bobUp = () => (buyerStep ??= aliceUp().then((agent) => journey.buyerUp(agent.agentRef)));
  const agentPays = () =>
    (paidStep ??= bobUp().then(async () => {
      const fromBlock = (await journey.chain.client.getBlockNumber()) + 1n;
      const balancesBefore = await journey.balances();
      return { fromBlock, balancesBefore, calls: await journey.agentCalls() };
    }));

  // Step 6: after the paid calls, the whole cluster is lost; `pulumi up` of both stacks is all
  // that runs. What each side said before and after, the call refused right after, and the
  // previews right after, for the tests below to compare.
  const loseAndResume = async () => {
    await agentPays();
    const before = {
      agentId: (await aliceUp()).agentId,
      mints: await journey.mints(),
      buyer: (await journey.records(2)).buyer,
    };
    await journey.loseCluster(() => recreateSharedRealCluster(JOURNEY_IMAGES));
    const resumed = await journey.resume();
    const previews = { alice: await journey.preview("alice"), bob: await journey.preview("bob") };
    const status = await journey.buyerStatus(before.buyer.status.spentTotal ?? "?");
    const buyer = await journey.buyerRecords();
    const fromBlock = (await journey.chain.client.getBlockNumber()) + 1n;
    const refused = await journey.agentChats(["hello again, after the cluster was lost"]);
    return {
      before,
      agentId: resumed.agentId,
      mints: await journey.mints(),
      status,
      ledger: buyer.ledger,
      previews,
      refused,
      paidSinceRefused: await journey.settlements(fromBlock),
    };
  };
  const resumed = () => (resumeStep ??= loseAndResume());
  // Then one more call's worth of budget: one paid call goes through, the next is refused.
  const raiseBudget = async () => {
    await resumed();
    await journey.setBudget("0.003");
    const fromBlock = (await journey.chain.client.getBlockNumber()) + 1n;
    const chats = await journey.agentChats(["paid again", "one call too many"]);
    return {
      chats,
      settled: await journey.settlements(fromBlock),
      status: await journey.buyerStatus("0.003"),
    };
  };
  const budgetRaised = () => (budgetStep ??= raiseBudget());

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

  it("Bob's pods cannot use Alice's facilitator: without her gateway's access token, 401", async () => {
    await agentPays(); // her gateway, holding the token, settled through it
    const answer = await journey.settleFromBobsPod();
    assert.equal(answer.status, 401, answer.body);
    assert.match(answer.body, /access token/);
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

  it("after the whole cluster is lost, `pulumi up` of both stacks alone brings back the same agent (no second mint) and Alice's offer Ready", async () => {
    const r = await resumed();
    assert.equal(r.agentId, r.before.agentId, "the same agent id");
    assert.deepEqual(r.before.mints, [BigInt(r.before.agentId)], "one mint before the loss");
    assert.deepEqual(r.mints, r.before.mints, "no second mint: the registration came back from state");
    // resume() waited for Alice's ServiceOffer Ready and Bob's PurchaseRequest Ready.
    assert.equal(r.status.endpoint, (await aliceUp()).offerUrl, "Bob's purchase resolves the agent again");
  });

  it("Bob's budget still counts what he spent before the loss: read back from the chain, his ledger's volume is gone", async () => {
    const r = await resumed();
    assert.equal(r.before.buyer.status.spentTotal, "0.002");
    assert.equal(r.status.spentTotal, "0.002", JSON.stringify(r.status));
    assert.equal(r.status.requests, 2, JSON.stringify(r.status));
    assert.deepEqual(
      r.ledger.map((e) => [e.tx?.toLowerCase(), e.amount]).sort(),
      r.before.buyer.ledger.map((e) => [e.tx?.toLowerCase(), e.amount]).sort(),
      "the fresh ledger holds the same two payments, recovered by transaction",
    );
    const [refused] = r.refused;
    assert.notEqual(refused?.status, 200, refused?.body);
    assert.match(refused?.body ?? "", /over_max_total|maxTotal/, "the agent sees why");
    assert.deepEqual(r.paidSinceRefused, [], "nothing was paid for the refused call");
  });

  it("`pulumi preview` of both stacks right after the resume shows no changes", async () => {
    const { previews } = await resumed();
    assert.deepEqual(Object.keys(previews.alice), ["same"], journey.log.text().slice(-8000));
    assert.deepEqual(Object.keys(previews.bob), ["same"], journey.log.text().slice(-8000));
  });

  it("with maxTotal raised by one call's worth, Bob's paid call works again, and the next is refused", async () => {
    const { chats, settled, status } = await budgetRaised();
    const [paid, over] = chats;
    assert.equal(paid?.status, 200, paid?.body);
    assert.equal(paid?.content, `model ${MODEL} answers: paid again`);
    assert.notEqual(over?.status, 200, over?.body);
    assert.match(over?.body ?? "", /over_max_total|maxTotal/);
    assert.equal(settled.length, 1, "exactly one more Transfer into Alice's payTo");
    assert.equal(at(settled, 0).amount, PRICE_ATOMIC);
    assert.equal(at(settled, 0).from, journey.buyer);
    assert.equal(status.spentTotal, "0.003", JSON.stringify(status));
    assert.equal(status.requests, 3, JSON.stringify(status));
  });
});
