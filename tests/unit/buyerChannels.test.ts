import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { PurchaseRequestSpec } from "../../api/resources";
import { channelDeposit, checkBudget, DEFAULT_DEPOSIT_CALLS } from "../../controller/buyer/budget";
import {
  channelConfigOf,
  channelPaymentOf,
  contextAfterRefund,
  KeyedLock,
  LedgerChannelStorage,
  refundSeen,
} from "../../controller/buyer/channels";
import { type ChannelConfigRecord, SpendLedger } from "../../controller/buyer/ledger";
import { spendStatus } from "../../controller/buyer/server";
import { secondsUntilFinal, withdrawalStep } from "../../controller/buyer/withdrawals";
import { ConfigError, parseStackConfig } from "../../program/config/parse";
import { only } from "../harness/assertions";
import { tempDir } from "../harness/tempDirs";

const CHANNEL = `0x${"ab".repeat(32)}`;
const none = { total: 0n, today: 0n, settledCount: 0 };

function spec(budget: Partial<PurchaseRequestSpec["budget"]> = {}, deposit?: string): PurchaseRequestSpec {
  return {
    endpoint: "https://seller.example/services/x",
    model: "m",
    payment: { network: "eip155:84532", decimals: 6, maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
    budget: { maxPerRequest: "0.01", ...budget },
    channels: deposit === undefined ? {} : { deposit },
  };
}

const ledgerFile = () => path.join(tempDir("ledger-"), "ledger.jsonl");

describe("buyer channels: deposit sizing (pure)", () => {
  it("deposits channels.deposit, or 100 calls at the price by default", () => {
    assert.deepEqual(channelDeposit(spec({}, "0.05"), { needed: 1000n, price: 1000n }, none), {
      ok: true,
      amount: 50_000n,
    });
    assert.deepEqual(channelDeposit(spec(), { needed: 1000n, price: 1000n }, none), {
      ok: true,
      amount: 1000n * DEFAULT_DEPOSIT_CALLS,
    });
  });

  it("never deposits less than the next voucher needs", () => {
    assert.deepEqual(channelDeposit(spec({}, "0.001"), { needed: 3000n, price: 3000n }, none), {
      ok: true,
      amount: 3000n,
    });
  });

  it("cuts the deposit to what maxTotal and maxPerDay leave, and refuses when the next call does not fit", () => {
    const s = spec({ maxTotal: "0.01", maxPerDay: "0.008" }, "0.005");
    assert.deepEqual(
      channelDeposit(s, { needed: 1000n, price: 1000n }, { ...none, total: 7000n, today: 0n }),
      {
        ok: true,
        amount: 3000n,
      },
    );
    assert.deepEqual(
      channelDeposit(s, { needed: 1000n, price: 1000n }, { ...none, total: 0n, today: 6000n }),
      {
        ok: true,
        amount: 2000n,
      },
    );
    const total = channelDeposit(s, { needed: 1000n, price: 1000n }, { ...none, total: 9500n });
    assert.equal(total.ok, false);
    assert.equal(!total.ok && total.reason, "over_max_total");
    assert.match(!total.ok ? total.message : "", /budget\.maxTotal 0\.01 leaves 500/);
    const day = channelDeposit(s, { needed: 1000n, price: 1000n }, { ...none, today: 7500n });
    assert.equal(!day.ok && day.reason, "over_max_per_day");
  });

  it("a voucher call checks the price limits, not the totals its deposit already counted", () => {
    const s = spec({ maxTotal: "0.005" });
    const offered = {
      network: "eip155:84532",
      asset: "0x0000000000000000000000000000000000000001",
      amount: 1000n,
    };
    const spent = { total: 5000n, today: 5000n, settledCount: 0 };
    assert.equal(checkBudget(s, offered, spent).reason, "over_max_total");
    assert.ok(checkBudget(s, offered, spent, { totals: false }).ok);
    assert.equal(
      checkBudget(s, { ...offered, amount: 20_000n }, spent, { totals: false }).reason,
      "over_max_price",
    );
  });
});

describe("buyer channels: budget accounting in the ledger", () => {
  it("counts a deposit once (not its vouchers), the calls as the seller charges them, and refunds back", () => {
    const file = ledgerFile();
    const day = 1_800_000_000_000;
    const ledger = new SpendLedger(file);
    const storage = new LedgerChannelStorage(ledger);
    // An exact payment and a channel: deposit 5000, three calls of 1000, then a refund of 2000.
    ledger.reserve("x", "p", 700n, day);
    ledger.settle("x", "0xexact", day);
    ledger.reserve("d1", "p", 5000n, day, CHANNEL);
    ledger.voucherSigned(CHANNEL, "p", 1000n, day);
    ledger.settle("d1", "0xdeposit", day);
    for (const charged of [1000n, 2000n, 3000n]) {
      if (charged > 1000n) ledger.voucherSigned(CHANNEL, "p", charged, day);
      void storage.set(CHANNEL, { chargedCumulativeAmount: charged.toString(), balance: "5000" });
    }
    assert.deepEqual(ledger.spend("p", day), { total: 5700n, today: 5700n, settledCount: 4 });
    ledger.refunded(CHANNEL, "p", 2000n, day);
    ledger.close();

    const reopened = new SpendLedger(file);
    assert.deepEqual(reopened.spend("p", day), { total: 3700n, today: 3700n, settledCount: 4 });
    const summary = only(reopened.channelSummaries("p"));
    assert.deepEqual(
      { ...summary },
      {
        channel: CHANNEL,
        purchase: "p",
        deposited: 5000n,
        pending: 0n,
        refunded: 2000n,
        charged: 3000n,
        signed: 3000n,
        lastUsedAt: day,
      },
    );
    assert.deepEqual(reopened.channelContext(CHANNEL.toUpperCase().replace("0X", "0x")), {
      chargedCumulativeAmount: "3000",
      balance: "5000",
    });
    const status = spendStatus(reopened, { name: "p", spec: spec() });
    assert.deepEqual(status, {
      requests: 4,
      spentToday: "0.0037",
      spentTotal: "0.0037",
      channels: { deposited: "0.005", charged: "0.003", refunded: "0.002", withdrawing: "0" },
    });
    reopened.close();
  });

  it("a refund comes off the newest deposits; an unsigned deposit is released; chain recovery never matches a deposit", () => {
    const ledger = new SpendLedger(ledgerFile());
    const day = 1_800_000_000_000;
    ledger.reserve("d1", "p", 3000n, day - 86_400_000, CHANNEL);
    ledger.settle("d1", "0x1", day - 86_400_000);
    ledger.reserve("d2", "p", 2000n, day, CHANNEL);
    ledger.settle("d2", "0x2", day);
    ledger.reserve("d3", "p", 4000n, day, CHANNEL);
    ledger.release("d3", day); // refused before signing
    ledger.refunded(CHANNEL, "p", 2500n, day);
    // 2000 of today's deposit and 500 of yesterday's came back.
    assert.deepEqual(ledger.spend("p", day), { total: 2500n, today: 0n, settledCount: 0 });
    // A Transfer to the seller of the same amount as a deposit is a payment of its own.
    ledger.reserve("d4", "p", 1000n, day, CHANNEL);
    assert.equal(ledger.recover("p", [{ tx: "0xt", amount: 1000n, at: day }]), 1);
    assert.equal(ledger.spend("p", day).total, 4500n);
    ledger.close();
  });

  it("sees a refund as deposits settled less refunds recorded above the chain's balance, never more", () => {
    assert.equal(refundSeen({ deposited: 5000n, refunded: 0n }, 3000n), 2000n);
    assert.equal(refundSeen({ deposited: 5000n, refunded: 2000n }, 3000n), 0n);
    // A deposit on chain the ledger has not seen settle yet: nothing is taken for a refund.
    assert.equal(refundSeen({ deposited: 5000n, refunded: 0n }, 9000n), 0n);
    assert.deepEqual(
      contextAfterRefund(
        { chargedCumulativeAmount: "3000", balance: "5000" },
        { balance: 3000n, totalClaimed: 3000n },
      ),
      { chargedCumulativeAmount: "3000", balance: "3000", totalClaimed: "3000" },
    );
    assert.equal(
      contextAfterRefund(undefined, { balance: 4000n, totalClaimed: 4000n }).chargedCumulativeAmount,
      "4000",
      "never below what was claimed",
    );
  });

  it("reads what a batch-settlement payload signs", () => {
    const salt = `0x${"01".repeat(32)}`;
    assert.deepEqual(
      channelPaymentOf({
        type: "deposit",
        voucher: { channelId: CHANNEL, maxClaimableAmount: "1000", signature: "0x" },
        deposit: { amount: "5000", authorization: { erc3009Authorization: { validBefore: "99", salt } } },
      }),
      {
        type: "deposit",
        channel: CHANNEL,
        cumulative: 1000n,
        deposit: { amount: 5000n, validBefore: "99", salt },
      },
    );
    assert.deepEqual(
      channelPaymentOf({ type: "voucher", voucher: { channelId: CHANNEL, maxClaimableAmount: "2000" } }),
      { type: "voucher", channel: CHANNEL, cumulative: 2000n },
    );
    assert.equal(channelPaymentOf({ authorization: {} }), undefined);
  });

  it("a deposit sent without an answer: the next request takes the channel's balance from the chain, once, instead of depositing again", async () => {
    const ledger = new SpendLedger(ledgerFile());
    const reads: string[] = [];
    const chain = (balance: bigint) => async (channel: string) => {
      reads.push(channel);
      return balance;
    };
    // The library's first record (read from the chain before the first deposit), then the
    // deposit, reserved and sent, with no answer.
    await new LedgerChannelStorage(ledger, chain(0n)).set(CHANNEL, {
      chargedCumulativeAmount: "0",
      balance: "0",
    });
    ledger.reserve("d1", "p", 6000n, Date.now(), CHANNEL);
    const next = new LedgerChannelStorage(ledger, chain(6000n));
    assert.deepEqual(await next.get(CHANNEL), { chargedCumulativeAmount: "0", balance: "6000" });
    assert.deepEqual(ledger.channelContext(CHANNEL), { chargedCumulativeAmount: "0", balance: "6000" });
    // Later reads in the same request (after its own deposit, say) are the ledger's alone.
    assert.deepEqual(await next.get(CHANNEL), { chargedCumulativeAmount: "0", balance: "6000" });
    assert.equal(reads.length, 1);
    // The chain holding less (the deposit never landed) changes nothing; nothing pending, no read.
    assert.equal((await new LedgerChannelStorage(ledger, chain(0n)).get(CHANNEL))?.balance, "6000");
    ledger.settle("d1", undefined);
    await new LedgerChannelStorage(ledger, chain(9n)).get(CHANNEL);
    assert.equal(reads.length, 2);
    ledger.close();
  });

  it("runs one task at a time per key", async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const task = (name: string, ms: number) =>
      lock.run("p", async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`${name}-`);
      });
    await Promise.all([task("a", 20), task("b", 1), lock.run("q", async () => order.push("q"))]);
    assert.deepEqual(order, ["a+", "q", "a-", "b+", "b-"]);
  });
});

describe("buyer channels: config", () => {
  const purchase = (extra: Record<string, unknown>, payment: Record<string, unknown> = {}) => ({
    purchases: [
      {
        name: "p",
        endpoint: "https://s.example.com/services/x",
        model: "m",
        payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545", ...payment },
        budget: { maxPerRequest: "0.01", maxTotal: "1" },
        ...extra,
      },
    ],
    buyerSignerKey: "k",
  });
  const ctx = { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) };
  const issueAt = (raw: Record<string, unknown>, at: string): string => {
    try {
      parseStackConfig(raw, ctx);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const hit = err.issues.find((i) => i.path === at);
      assert.ok(hit, `no issue at ${at}: ${JSON.stringify(err.issues)}`);
      return hit.message;
    }
    return assert.fail(`accepted; expected an issue at ${at}`);
  };

  it("passes channels to the PurchaseRequest", () => {
    const config = parseStackConfig(purchase({ channels: { deposit: "0.5" } }), ctx);
    assert.deepEqual(only(config.purchases).channels, { deposit: "0.5" });
    const withdrawing = { deposit: "0.5", withdrawAfterIdleSeconds: 3600 };
    assert.deepEqual(
      only(parseStackConfig(purchase({ channels: withdrawing }), ctx).purchases).channels,
      withdrawing,
    );
    assert.deepEqual(
      only(parseStackConfig(purchase({ channels: { withdrawAfterIdleSeconds: 60 } }), ctx).purchases)
        .channels,
      { withdrawAfterIdleSeconds: 60 },
    );
    assert.deepEqual(only(parseStackConfig(purchase({ channels: {} }), ctx).purchases).channels, {});
    assert.equal(only(parseStackConfig(purchase({}), ctx).purchases).channels, undefined);
  });

  it("refuses channels without an RPC URL, and deposits that cannot pay a call or exceed the budget", () => {
    assert.match(
      issueAt(purchase({ channels: {} }, { rpcUrl: undefined }), "purchases[0].channels"),
      /payment\.rpcUrl/,
    );
    assert.match(
      issueAt(purchase({ channels: { deposit: "0.001" } }), "purchases[0].channels.deposit"),
      /maxPrice/,
    );
    assert.match(
      issueAt(purchase({ channels: { deposit: "2" } }), "purchases[0].channels.deposit"),
      /budget\.maxTotal/,
    );
    assert.match(issueAt(purchase({ channels: { deposit: 1 } }), "purchases[0].channels.deposit"), /quoted/);
    assert.match(
      issueAt(purchase({ channels: { size: "1" } }), "purchases[0].channels"),
      /size|unrecognized/i,
    );
    for (const idle of [0, 1.5, "3600"])
      assert.match(
        issueAt(
          purchase({ channels: { withdrawAfterIdleSeconds: idle } }),
          "purchases[0].channels.withdrawAfterIdleSeconds",
        ),
        /whole number from 1 to 31536000/,
      );
  });
});

describe("buyer channels: withdrawing the unspent deposit when the seller does not refund", () => {
  const config: ChannelConfigRecord = {
    payer: "0x1111111111111111111111111111111111111111",
    payerAuthorizer: "0x1111111111111111111111111111111111111111",
    receiver: "0x2222222222222222222222222222222222222222",
    receiverAuthorizer: "0x3333333333333333333333333333333333333333",
    token: "0x4444444444444444444444444444444444444444",
    withdrawDelay: 900,
    salt: `0x${"ab".repeat(32)}`,
  };
  const now = 1_800_000_000_000;
  const chain = (balance: bigint, totalClaimed: bigint, time = now / 1000) => ({
    balance,
    totalClaimed,
    time,
  });
  const idle = { lastUsedAt: now - 3_600_000 };

  it("waits for the idle time, then asks for the balance less every voucher signed or claimed", () => {
    const step = (channel: Parameters<typeof withdrawalStep>[0]["channel"], onChain = chain(6000n, 1000n)) =>
      withdrawalStep({ channel, withdrawDelay: 900, chain: onChain, idleSeconds: 3600, now });
    assert.deepEqual(
      step({ signed: 3000n, lastUsedAt: now - 3_599_000 }),
      { kind: "none" },
      "used 1 s too recently",
    );
    assert.deepEqual(step({ signed: 3000n, ...idle }), { kind: "initiate", amount: 3000n });
    // The seller claimed more than the ledger saw signed (a voucher from before a lost ledger).
    assert.deepEqual(step({ signed: 3000n, ...idle }, chain(6000n, 4000n)), {
      kind: "initiate",
      amount: 2000n,
    });
    assert.deepEqual(step({ signed: 6000n, ...idle }), { kind: "none" }, "all of it is the seller's");
    assert.deepEqual(
      step({ signed: 0n, ...idle }, chain(0n, 0n)),
      { kind: "none" },
      "nothing left (refunded)",
    );
  });

  it("finalizes once the channel's delay has passed on chain, by the chain's clock, unless nothing unspent is left", () => {
    const withdrawal = { amount: 3000n, tx: "0xabc", initiatedAt: 1_799_999_000 };
    const step = (time: number) =>
      withdrawalStep({
        channel: { signed: 3000n, lastUsedAt: now, withdrawal },
        withdrawDelay: 900,
        chain: chain(6000n, 0n, time),
        idleSeconds: 3600,
        now,
      });
    assert.deepEqual(step(1_799_999_899), { kind: "wait", readyAt: 1_799_999_900 });
    assert.deepEqual(step(1_799_999_900), { kind: "finalize" });
    // Nothing unspent left (finalized before a crash, or the seller refunded meanwhile): finalizing
    // could only take vouchers the seller has not claimed yet, so it is not sent.
    for (const time of [1_799_999_000, 1_800_000_000])
      assert.deepEqual(
        withdrawalStep({
          channel: { signed: 3000n, lastUsedAt: now, withdrawal },
          withdrawDelay: 900,
          chain: chain(3000n, 0n, time),
          idleSeconds: 3600,
          now,
        }),
        { kind: "done" },
      );
    assert.equal(secondsUntilFinal(withdrawal, 900, 1_799_999_000_000), 900);
    assert.equal(secondsUntilFinal(withdrawal, 900, 1_800_000_000_000), 1, "overdue: retry in a second");
  });

  it("reads the channel's configuration from a deposit payload, and nothing from a partial one", () => {
    const voucher = { channelId: CHANNEL, maxClaimableAmount: "1000" };
    const deposit = channelPaymentOf({ type: "deposit", channelConfig: config, voucher });
    assert.deepEqual(deposit?.config, config);
    assert.equal(channelPaymentOf({ type: "voucher", voucher })?.config, undefined);
    assert.equal(channelConfigOf({ ...config, salt: "0x12" }), undefined);
    assert.equal(channelConfigOf({ ...config, token: "not an address" }), undefined);
    assert.equal(channelConfigOf({ ...config, withdrawDelay: -1 }), undefined);
    assert.equal(
      channelConfigOf({ ...config, receiver: config.receiver.toUpperCase().replace("0X", "0x") })?.receiver,
      config.receiver,
    );
  });

  it("keeps the configuration, the last use and a pending withdrawal across restarts; the status shows what is being withdrawn", () => {
    const file = ledgerFile();
    const ledger = new SpendLedger(file);
    ledger.reserve("d1", "p", 6000n, now - 10_000, CHANNEL);
    ledger.voucherSigned(CHANNEL, "p", 1000n, now - 10_000);
    ledger.channelConfigured(CHANNEL, "p", config, now - 10_000);
    ledger.channelConfigured(CHANNEL, "p", { ...config, withdrawDelay: 1 }, now - 9_000);
    ledger.settle("d1", "0xdeposit", now - 10_000);
    ledger.voucherSigned(CHANNEL, "p", 3000n, now - 5_000);
    ledger.withdrawalInitiated(
      CHANNEL,
      "p",
      { amount: 3000n, tx: "0xinit", initiatedAt: 1_799_999_000 },
      now,
    );
    ledger.close();

    const reopened = new SpendLedger(file);
    const summary = only(reopened.channelSummaries("p"));
    assert.deepEqual(summary.config, config, "the first configuration recorded stays");
    assert.equal(summary.lastUsedAt, now - 5_000);
    assert.deepEqual(summary.withdrawal, { amount: 3000n, tx: "0xinit", initiatedAt: 1_799_999_000 });
    assert.equal(spendStatus(reopened, { name: "p", spec: spec() }).channels?.withdrawing, "0.003");
    reopened.withdrawalFinalized(CHANNEL, "0xfinal", now + 1000);
    reopened.refunded(CHANNEL, "p", 3000n, now + 1000);
    reopened.close();

    const after = new SpendLedger(file);
    assert.equal(only(after.channelSummaries("p")).withdrawal, undefined);
    const status = spendStatus(after, { name: "p", spec: spec() });
    assert.deepEqual(status.channels, {
      deposited: "0.006",
      charged: "0",
      refunded: "0.003",
      withdrawing: "0",
    });
    assert.equal(status.spentTotal, "0.003");
    after.close();
  });
});
