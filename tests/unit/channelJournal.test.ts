import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Channel } from "@x402/evm/batch-settlement/server";
import { ChannelJournal, mattersAfterCrash } from "../../controller/payments/channelJournal";
import { defined } from "../harness/assertions";

const id = (n: number) => `0x${n.toString(16).padStart(64, "0")}`;

function channel(n: number, over: Partial<Channel> = {}): Channel {
  return {
    channelId: id(n),
    channelConfig: {} as Channel["channelConfig"],
    chargedCumulativeAmount: "0",
    signedMaxClaimable: "0",
    signature: "0x",
    balance: "10000",
    totalClaimed: "0",
    withdrawRequestedAt: 0,
    refundNonce: 0,
    lastRequestTimestamp: 1_000,
    ...over,
  };
}

/** A charge: what the library's settle does to a channel on a voucher. */
const charge = (c: Channel | undefined, price = 1000n): Channel => {
  const current = defined(c, "the channel");
  const total = (BigInt(current.chargedCumulativeAmount) + price).toString();
  const { pendingRequest: _, ...rest } = current;
  return { ...rest, chargedCumulativeAmount: total, signedMaxClaimable: total };
};

const journalLines = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith("journal-"))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), "utf8").split("\n"))
    .filter((l) => l !== "");

describe("channel journal (the gateway's durable channel storage)", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "channel-journal-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a charge is in the journal file when updateChannel resolves, and a new process reads it back", async () => {
    const journal = new ChannelJournal({ directory: dir });
    await journal.updateChannel(id(1), () => channel(1));
    for (let i = 0; i < 5; i++) {
      await journal.updateChannel(id(1), (c) => charge(c));
      // No close, no flush: as if the process were killed right after answering.
      const last = JSON.parse(defined(journalLines(dir).at(-1), "a journal line"));
      assert.equal(last.channel.chargedCumulativeAmount, String(1000 * (i + 1)));
    }
    await journal.updateChannel(id(2), () => channel(2));
    await journal.updateChannel(id(2), () => undefined);
    const reopened = new ChannelJournal({ directory: dir });
    assert.equal((await reopened.get(id(1)))?.chargedCumulativeAmount, "5000");
    assert.equal(await reopened.get(id(2)), undefined, "a deleted channel stays deleted");
    assert.deepEqual(
      (await reopened.list()).map((c) => c.channelId),
      [id(1)],
    );
    await Promise.all([journal.close(), reopened.close()]);
  });

  it("writes the journal through a descriptor opened O_DSYNC (each write on disk before it returns)", async function () {
    if (process.platform !== "linux") this.skip(); // /proc/self/fdinfo
    const journal = new ChannelJournal({ directory: dir });
    await journal.updateChannel(id(1), () => channel(1));
    const journalFile = path.join(
      dir,
      defined(
        fs.readdirSync(dir).find((f) => f.startsWith("journal-")),
        "a journal file",
      ),
    );
    const flags = fs
      .readdirSync("/proc/self/fd")
      .filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === journalFile;
        } catch {
          return false;
        }
      })
      .map((fd) =>
        Number.parseInt(
          /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1] ?? "0",
          8,
        ),
      );
    assert.equal(flags.length, 1, "one descriptor on the journal");
    assert.equal((flags[0] ?? 0) & fs.constants.O_DSYNC, fs.constants.O_DSYNC, "O_DSYNC");
    assert.equal((flags[0] ?? 0) & fs.constants.O_APPEND, fs.constants.O_APPEND, "O_APPEND");
    await journal.close();
  });

  /** The disk writes (and syncs) `work` makes: each write to the journal is a disk sync (O_DSYNC). */
  async function countingWrites(work: () => Promise<unknown>): Promise<number> {
    let writes = 0;
    const probe = await fs.promises.open(path.join(dir, "probe"), "w");
    const proto = Object.getPrototypeOf(probe);
    await probe.close();
    const { write, datasync } = proto;
    proto.write = function (this: unknown, ...args: unknown[]) {
      writes++;
      return write.apply(this, args);
    };
    proto.datasync = function (this: unknown) {
      writes++;
      return datasync.call(this);
    };
    try {
      await work();
    } finally {
      Object.assign(proto, { write, datasync });
    }
    return writes;
  }

  it("concurrent charges on many channels share disk writes and all land, in order per channel", async () => {
    const journal = new ChannelJournal({ directory: dir });
    const channels = Array.from({ length: 32 }, (_, i) => i + 1);
    await Promise.all(channels.map((n) => journal.updateChannel(id(n), () => channel(n))));
    const writes = await countingWrites(() =>
      Promise.all(
        channels.map(async (n) => {
          for (let k = 0; k < 10; k++) await journal.updateChannel(id(n), (c) => charge(c));
        }),
      ),
    );
    assert.ok(writes < 320 / 4, `${writes} disk writes for 320 charges`);
    const reopened = new ChannelJournal({ directory: dir });
    for (const n of channels) assert.equal((await reopened.get(id(n)))?.chargedCumulativeAmount, "10000");
    await Promise.all([journal.close(), reopened.close()]);
  });

  it("charges made in the same turn of the event loop share one disk write, the first one included", async () => {
    const journal = new ChannelJournal({ directory: dir });
    const channels = Array.from({ length: 8 }, (_, i) => i + 1);
    await Promise.all(channels.map((n) => journal.updateChannel(id(n), () => channel(n))));
    // As when several upstream answers are read in one poll: the first charge used to be written
    // alone, the rest in a second write.
    const writes = await countingWrites(() =>
      Promise.all(channels.map((n) => journal.updateChannel(id(n), (c) => charge(c)))),
    );
    assert.equal(writes, 1, `${writes} disk writes for ${channels.length} charges of one turn`);
    await journal.close();
  });

  it("a reservation alone is not journaled (a restart releases it); a charge, a claim, a top-up, a new or deleted channel are", async () => {
    const base = channel(1, { chargedCumulativeAmount: "1000" });
    const reserved = {
      ...base,
      lastRequestTimestamp: 2_000,
      onchainSyncedAt: 2_000,
      pendingRequest: { pendingId: "p", signedMaxClaimable: "2000", expiresAt: 9_000 },
    };
    assert.equal(mattersAfterCrash(base, reserved), false);
    assert.equal(mattersAfterCrash(reserved, charge(reserved)), true);
    assert.equal(mattersAfterCrash(base, { ...base, totalClaimed: "1000" }), true, "a claim");
    assert.equal(mattersAfterCrash(base, { ...base, balance: "20000" }), true, "a top-up");
    assert.equal(mattersAfterCrash(undefined, base), true, "a new channel");
    assert.equal(mattersAfterCrash(base, undefined), true, "a deleted channel");

    const journal = new ChannelJournal({ directory: dir });
    await journal.updateChannel(id(1), () => base);
    const lines = journalLines(dir).length;
    await journal.updateChannel(id(1), () => reserved);
    assert.equal(journalLines(dir).length, lines, "the reservation is not written");
    assert.deepEqual(
      (await journal.get(id(1)))?.pendingRequest,
      reserved.pendingRequest,
      "but held in memory",
    );
    await journal.updateChannel(id(1), (c) => charge(c));
    assert.equal(journalLines(dir).length, lines + 1);
    await journal.close();
    const reopened = new ChannelJournal({ directory: dir });
    const after = defined(await reopened.get(id(1)), "the channel");
    assert.equal(after.chargedCumulativeAmount, "2000");
    assert.equal(after.lastRequestTimestamp, 2_000, "the reservation's time came with the charge");
    assert.equal(after.pendingRequest, undefined);
    await reopened.close();
  });

  it("a record torn by a crash (the last line) is dropped; damage elsewhere is refused, naming the file", async () => {
    const journal = new ChannelJournal({ directory: dir });
    await journal.updateChannel(id(1), () => channel(1));
    await journal.updateChannel(id(1), (c) => charge(c));
    await journal.close();
    const file = defined(
      fs.readdirSync(dir).find((f) => f.startsWith("journal-")),
      "the journal file",
    );
    fs.appendFileSync(path.join(dir, file), '{"id":"0x00","chan');
    const afterTear = new ChannelJournal({ directory: dir });
    assert.equal((await afterTear.get(id(1)))?.chargedCumulativeAmount, "1000");
    await afterTear.updateChannel(id(1), (c) => charge(c));
    await afterTear.close();
    const reopened = new ChannelJournal({ directory: dir });
    assert.equal((await reopened.get(id(1)))?.chargedCumulativeAmount, "2000");
    await reopened.close();

    const damaged = defined(
      fs.readdirSync(dir).find((f) => f.startsWith("journal-")),
      "the journal file",
    );
    fs.writeFileSync(
      path.join(dir, damaged),
      `garbage\n${JSON.stringify({ id: id(1), channel: channel(1) })}\n`,
    );
    await assert.rejects(new ChannelJournal({ directory: dir }).get(id(1)), (err: Error) => {
      assert.match(err.message, /damaged at line 1/);
      assert.ok(err.message.includes(damaged));
      return true;
    });
  });

  it("compacts into a snapshot every compactEvery records and removes the old journals", async () => {
    const journal = new ChannelJournal({ directory: dir, compactEvery: 5 });
    await journal.updateChannel(id(1), () => channel(1));
    for (let i = 0; i < 23; i++) await journal.updateChannel(id(1), (c) => charge(c));
    await journal.close();
    const journals = fs.readdirSync(dir).filter((f) => f.startsWith("journal-"));
    assert.equal(journals.length, 1, `one journal left: ${journals.join(", ")}`);
    assert.ok(journalLines(dir).length < 5);
    const reopened = new ChannelJournal({ directory: dir });
    assert.equal((await reopened.get(id(1)))?.chargedCumulativeAmount, "23000");
    await reopened.close();
  });

  it("after close, changes are refused rather than written to a journal nobody syncs", async () => {
    const journal = new ChannelJournal({ directory: dir });
    await journal.updateChannel(id(1), () => channel(1));
    await journal.close();
    await assert.rejects(
      journal.updateChannel(id(1), (c) => charge(c)),
      /closed/,
    );
  });
});
