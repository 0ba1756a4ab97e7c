/**
 * The gateway's batch-settlement channel storage: the channels in memory, and every change that
 * matters after a crash (a charge, a new voucher, a claim, a deposit, a refund) appended to a
 * journal file and answered only once it is on disk (the file is opened O_DSYNC). A request's
 * reservation is not journaled (a restart releases it anyway), so a paid request waits for one
 * disk write, its charge's. Concurrent requests share one write (group commit), so durability
 * costs a fraction of a disk flush per voucher instead of the library's file storage's lock file,
 * write, rename and unlink per update (which does not reach the disk before answering at all: a
 * node crash could forget a voucher it had accepted).
 *
 * Journal records are whole channel states, replayed in order over the last snapshot; a record
 * torn by a crash is always the last one and was never acknowledged, so it is dropped. The
 * journal is compacted into a new snapshot every `compactEvery` records.
 *
 * One process owns a directory (README, "Channels": one gateway replica, Recreate rollouts):
 * the channels in memory are the truth, as with the library's in-memory storage.
 */
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { setImmediate as afterPoll } from "node:timers/promises";
import type { Channel, ChannelStorage } from "@x402/evm/batch-settlement/server";

type ChannelUpdateResult = Awaited<ReturnType<ChannelStorage["updateChannel"]>>;

/** A journal line: the channel's whole state after a change, or null once deleted. */
interface JournalRecord {
  readonly id: string;
  readonly channel: Channel | null;
}

const SNAPSHOT = "channels.json";
const journalName = (generation: number) => `journal-${generation}.jsonl`;
const JOURNAL_RE = /^journal-(\d+)\.jsonl$/;
/**
 * O_DSYNC: each write to the journal returns once it is on disk, as a write and an fdatasync
 * would, in one trip to libuv's thread pool instead of two. Where the platform has no O_DSYNC,
 * each write is followed by an fdatasync.
 */
const DSYNC: number | undefined = fsConstants.O_DSYNC;
const JOURNAL_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | (DSYNC ?? 0);

export interface ChannelJournalOptions {
  directory: string;
  /** Journal records between snapshots (default 10 000). */
  compactEvery?: number;
}

export class ChannelJournal implements ChannelStorage {
  private readonly channels = new Map<string, Channel>();
  private opened: Promise<void> | undefined;
  private journal: fs.FileHandle | undefined;
  private generation = 0;
  private records = 0;
  /** Lines not yet written, with who waits for them to be durable. */
  private queue: { line: string; done: () => void; failed: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /**
   * Set when a write or sync failed: what is in memory may then be ahead of the disk, so no
   * further change is taken (channel payments are refused) until a restart reloads the disk.
   */
  private broken: Error | undefined;
  private closed = false;
  private readonly directory: string;
  private readonly compactEvery: number;

  constructor(opts: ChannelJournalOptions) {
    this.directory = opts.directory;
    this.compactEvery = opts.compactEvery ?? 10_000;
  }

  async get(channelId: string): Promise<Channel | undefined> {
    await this.open();
    return this.channels.get(key(channelId));
  }

  async list(): Promise<Channel[]> {
    await this.open();
    return [...this.channels.values()].sort((a, b) => a.channelId.localeCompare(b.channelId));
  }

  /**
   * Applies `update` at once (no other change can interleave: it runs synchronously on the map)
   * and resolves once the change is durable. A change to what a restart discards alone (the
   * request reservation, the last-request and last-sync times) is kept in memory only: the
   * channel's next journaled state carries it.
   */
  async updateChannel(
    channelId: string,
    update: (current: Channel | undefined) => Channel | undefined,
  ): Promise<ChannelUpdateResult> {
    await this.open();
    if (this.broken) throw this.broken;
    const id = key(channelId);
    const current = this.channels.get(id);
    const next = update(current);
    if (next === current) return { channel: current, status: "unchanged" };
    if (next) this.channels.set(id, next);
    else if (current) this.channels.delete(id);
    else return { channel: undefined, status: "unchanged" };
    if (mattersAfterCrash(current, next)) await this.append({ id, channel: next ?? null });
    return next ? { channel: next, status: "updated" } : { channel: undefined, status: "deleted" };
  }

  /** Writes what is queued and closes the journal (the state stays on disk). */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.opened) return;
    await this.opened;
    while (this.flushing) await this.flushing;
    await this.journal?.close();
    this.journal = undefined;
  }

  private open(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the channel journal in ${this.directory} is closed`));
    this.opened ??= this.load();
    return this.opened;
  }

  /** The snapshot, then every journal at or after its generation, in order. */
  private async load(): Promise<void> {
    await fs.mkdir(this.directory, { recursive: true });
    let snapshot: { generation: number; channels: Channel[] } | undefined;
    try {
      snapshot = JSON.parse(await fs.readFile(path.join(this.directory, SNAPSHOT), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    for (const c of snapshot?.channels ?? []) this.channels.set(key(c.channelId), c);
    const base = snapshot?.generation ?? 0;
    const generations = (await fs.readdir(this.directory))
      .map((name) => JOURNAL_RE.exec(name)?.[1])
      .filter((g): g is string => g !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    for (const g of generations) {
      const file = path.join(this.directory, journalName(g));
      if (g < base) {
        await fs.rm(file, { force: true }); // folded into the snapshot by an interrupted compaction
        continue;
      }
      this.replay(await fs.readFile(file, "utf8"), file);
    }
    // A new journal per start: a torn last line of the previous one is never appended to.
    this.generation = Math.max(base, ...generations, 0) + 1;
    await this.compact();
  }

  private replay(text: string, file: string): void {
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      if (line === "") return;
      let record: JournalRecord;
      try {
        record = JSON.parse(line);
      } catch (err) {
        // Only the last line can be torn (the crash came during its write; it was never
        // acknowledged). Anywhere else the file is damaged: refuse rather than guess.
        if (lines.slice(i + 1).every((rest) => rest === "")) return;
        throw new Error(`channel journal ${file} is damaged at line ${i + 1}`, { cause: err });
      }
      if (record.channel) this.channels.set(record.id, record.channel);
      else this.channels.delete(record.id);
    });
  }

  private append(record: JournalRecord): Promise<void> {
    return new Promise<void>((done, failed) => {
      this.queue.push({ line: `${JSON.stringify(record)}\n`, done, failed });
      this.flushing ??= this.flush().finally(() => {
        this.flushing = undefined;
      });
    });
  }

  /**
   * Writes and syncs the queue in batches (group commit) until it is empty. Each batch is taken
   * once the loop has handled the I/O it is in the middle of (setImmediate runs after the poll
   * phase), so the charges of the responses read in the same turn share its write: fewer trips to
   * libuv's pool, each of which wakes one of its threads.
   */
  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      await afterPoll();
      const batch = this.queue;
      this.queue = [];
      try {
        const journal = this.journal;
        if (!journal) throw new Error("the channel journal is closed");
        await writeAll(journal, Buffer.from(batch.map((b) => b.line).join("")));
        if (DSYNC === undefined) await journal.datasync();
        this.records += batch.length;
        for (const b of batch) b.done();
      } catch (err) {
        this.broken ??= new Error(`the channel journal in ${this.directory} could not be written`, {
          cause: err,
        });
        for (const b of [...batch, ...this.queue]) b.failed(this.broken);
        this.queue = [];
        return;
      }
      if (this.records >= this.compactEvery) await this.compact().catch(() => undefined);
    }
  }

  /**
   * Starts a new journal and writes the channels as they are now to the snapshot (durably),
   * then removes the older journals. Changes made meanwhile go to the new journal.
   */
  private async compact(): Promise<void> {
    const generation = this.generation++;
    const previous = this.journal;
    const channels = [...this.channels.values()];
    this.journal = await fs.open(path.join(this.directory, journalName(generation)), JOURNAL_FLAGS);
    this.records = 0;
    // Syncing the directory also makes the new journal's name durable.
    await writeDurably(path.join(this.directory, SNAPSHOT), JSON.stringify({ generation, channels }));
    await previous?.close();
    for (const name of await fs.readdir(this.directory)) {
      const g = JOURNAL_RE.exec(name)?.[1];
      if (g !== undefined && Number(g) < generation)
        await fs.rm(path.join(this.directory, name), { force: true });
    }
  }
}

/**
 * Whether a change must survive a crash before its request is answered: anything but the
 * request reservation (released at start), the last-request time and the last on-chain sync
 * (a missing one only sends the next voucher to the facilitator).
 */
export function mattersAfterCrash(current: Channel | undefined, next: Channel | undefined): boolean {
  if (!current || !next) return true;
  return (
    current.chargedCumulativeAmount !== next.chargedCumulativeAmount ||
    current.signedMaxClaimable !== next.signedMaxClaimable ||
    current.signature !== next.signature ||
    current.balance !== next.balance ||
    current.totalClaimed !== next.totalClaimed ||
    current.withdrawRequestedAt !== next.withdrawRequestedAt ||
    current.refundNonce !== next.refundNonce ||
    (current.channelConfig !== next.channelConfig &&
      JSON.stringify(current.channelConfig) !== JSON.stringify(next.channelConfig))
  );
}

function key(channelId: string): string {
  if (!/^0x[0-9a-fA-F]{64}$/.test(channelId)) throw new Error(`not a channel id: ${channelId}`);
  return channelId.toLowerCase();
}

/** Writes all of `data` (a write to a file may take less than asked, e.g. near a full disk). */
async function writeAll(handle: fs.FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    if (bytesWritten <= 0) throw new Error("the channel journal took no bytes");
    offset += bytesWritten;
  }
}

/** Replaces `file` with `text` atomically and on disk: a temporary file, synced, renamed over it. */
export async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await fs.open(tmp, "w");
  try {
    await handle.write(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
  await syncDirectory(path.dirname(file));
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
