/**
 * The `batch-settlement` scheme (payment channels) at the gateway, with @x402/evm's server part.
 *
 *   first request  → a deposit payload: verified and settled (the deposit transaction) through the
 *                    facilitator, like an `exact` payment
 *   later requests → a cumulative voucher: checked here (the payer authorizer's EIP-712 signature,
 *                    the cumulative amount = what was charged + this request's price, within the
 *                    deposit) against the channel's stored state, with no facilitator call; on the
 *                    upstream's 2xx head the new cumulative amount is committed
 *   in the background → claims of the vouchers received (one transaction per batch, signed by the
 *                    facilitator as receiver authorizer), settlement of claimed funds to payTo, and
 *                    cooperative refunds of idle channels (claims.ts decides when)
 *
 * Channel state (the latest voucher and the charged and claimed amounts per channel) is kept in a
 * journal under `stateDir` (channelJournal.ts), one directory per lane (network, payTo, asset),
 * on disk (fdatasync) before the response is sent: a restarted gateway, or one whose node
 * crashed, knows every voucher it accepted, so it neither accepts one twice nor loses a claim.
 * The directory must outlive the pod (a volume); one gateway replica owns it (README, "Channels").
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { type FacilitatorClient, x402ResourceServer } from "@x402/core/server";
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import {
  type BatchSettlementChannelManager,
  BatchSettlementEvmScheme,
  type Channel,
  type ChannelStorage,
} from "@x402/evm/batch-settlement/server";
import { errorMessage, type LogFn } from "../shared/log";
import { ChannelJournal, writeDurably } from "./channelJournal";
import { claimDecision, idleRefunds, isNothingToSettle, type LaneTerms, owed } from "./claims";
import { installNativeVoucherCheck, type VoucherCheckPath } from "./nativeVoucherCheck";
import { CHANNEL_WITHDRAW_DELAY_SECONDS } from "./requirements";
import { SignerRecovery } from "./signerRecovery";

export const BATCH_SETTLEMENT = "batch-settlement";

/** What the gate needs to know of a channel payment once checked. */
export type ChannelVerdict =
  | { readonly ok: true; readonly payer: string | undefined }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly message: string;
      /** For a voucher on a stale base: the requirement with the channel's state, so the buyer resyncs. */
      readonly corrective?: PaymentRequirements;
    };

export interface ChannelPaymentsOptions {
  facilitator: FacilitatorClient;
  /** Root of the durable channel state (a volume in a cluster). */
  stateDir: string;
  log: LogFn;
  /** How often the claim loop looks at the channels (default 1 s). */
  tickMs?: number;
  /** Told which check decided each voucher (metrics). */
  onVoucherCheck?: (path: VoucherCheckPath) => void;
  /** Told where voucher signatures were recovered: a worker batch, or one on the event loop (metrics). */
  onSignatureRecovered?: (where: "worker" | "loop", count: number) => void;
}

/** One receiver's channels in one token on one network: its scheme, storage and claim loop. */
interface Lane {
  readonly key: string;
  readonly server: x402ResourceServer;
  readonly scheme: BatchSettlementEvmScheme;
  readonly storage: ChannelJournal;
  readonly manager: BatchSettlementChannelManager;
  terms: LaneTerms;
  /** Whether `lane.json` holds `terms`. */
  stored: boolean;
  lastClaimAt: number;
  lastRefundCheckAt: number;
  /** Set after a claim: claimed funds wait for a settle transaction. */
  unsettled: boolean;
  ready: Promise<void>;
}

export class ChannelPayments {
  private readonly lanes = new Map<string, Lane>();
  /** Voucher signatures are recovered off the event loop, for every lane. */
  private readonly signers: SignerRecovery;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly opts: ChannelPaymentsOptions) {
    this.signers = new SignerRecovery({
      onFailure: (err) =>
        opts.log("channels: the signature worker failed; vouchers are checked on the event loop", {
          level: "warn",
          error: errorMessage(err),
        }),
      ...(opts.onSignatureRecovered ? { onRecovered: opts.onSignatureRecovered } : {}),
    });
  }

  /**
   * Starts the claim loop (one pass at a time over every lane), first taking up the lanes a
   * previous process left in `stateDir`: their vouchers are claimed even if no buyer returns.
   */
  async start(): Promise<void> {
    for (const lane of await storedLanes(this.opts.stateDir)) await this.lane(lane.requirement, lane.terms);
    this.timer = setInterval(() => {
      if (this.running || this.stopped) return;
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, this.opts.tickMs ?? 1000);
    this.timer.unref();
  }

  /** Stops the loop (after the pass in progress); state stays on disk for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    for (const lane of this.lanes.values()) await lane.storage.close();
    await this.signers.close();
  }

  /**
   * Checks a deposit or voucher against the offer's requirement. A voucher on a fresh channel is
   * decided here alone; a deposit (or a channel whose on-chain state is older than the library's
   * TTL) goes to the facilitator's /verify.
   */
  async verify(
    payload: PaymentPayload,
    requirement: PaymentRequirements,
    terms: LaneTerms | undefined,
  ): Promise<ChannelVerdict> {
    const lane = await this.lane(requirement, terms);
    const result = await lane.server.verifyPayment(payload, requirement);
    if (result.isValid) return { ok: true, payer: result.payer };
    const reason = result.invalidReason ?? "invalid_payment";
    const refused = {
      ok: false as const,
      reason,
      message: result.invalidMessage ?? refusalMessage(reason),
    };
    // The library adds the channel's state (charged amount, latest voucher) to the 402 it answers
    // a stale voucher base with; the buyer's client checks it and re-signs from there.
    const enriched = await lane.scheme.enrichPaymentRequiredResponse({
      requirements: [{ ...requirement, extra: { ...requirement.extra } }],
      paymentPayload: payload,
      resourceInfo: { url: "" },
      error: reason,
      paymentRequiredResponse: { x402Version: 2, resource: { url: "" }, accepts: [] },
    });
    const corrective = enriched?.[0];
    return corrective ? { ...refused, corrective } : refused;
  }

  /**
   * Charges a verified payment once the upstream answered 2xx: a voucher is committed to the
   * channel's state (no transaction), a deposit is settled on chain by the facilitator.
   */
  async settle(payload: PaymentPayload, requirement: PaymentRequirements): Promise<SettleResponse> {
    const lane = await this.lane(requirement, undefined);
    return lane.server.settlePayment(payload, requirement);
  }

  /** A verified payment that will not be charged (the upstream failed): its reservation is released. */
  async cancel(payload: PaymentPayload, requirement: PaymentRequirements): Promise<void> {
    const lane = await this.lane(requirement, undefined);
    await lane.scheme.clearPendingRequest(payload);
  }

  /** Claims and settles everything owed now (tests, and a gateway told to drain). */
  async flush(): Promise<void> {
    await this.running;
    for (const lane of this.lanes.values()) await this.claim(lane, Date.now());
  }

  /** The lane of a requirement, created (and its stored channels released) on first use. */
  private async lane(requirement: PaymentRequirements, terms: LaneTerms | undefined): Promise<Lane> {
    const key = `${requirement.network}/${requirement.payTo}/${requirement.asset}`.toLowerCase();
    let lane = this.lanes.get(key);
    if (!lane) {
      const storage = new ChannelJournal({ directory: this.laneDirectory(key) });
      const scheme = new BatchSettlementEvmScheme(requirement.payTo as `0x${string}`, {
        storage,
        withdrawDelay: CHANNEL_WITHDRAW_DELAY_SECONDS,
      });
      installNativeVoucherCheck(scheme, {
        ...(this.opts.onVoucherCheck ? { onCheck: this.opts.onVoucherCheck } : {}),
        recover: (digest, signature) => this.signers.recover(digest, signature),
      });
      const server = new x402ResourceServer(this.opts.facilitator).register(
        requirement.network as `${string}:${string}`,
        scheme,
      );
      const now = Date.now();
      lane = {
        key,
        server,
        scheme,
        storage,
        manager: scheme.createChannelManager(
          this.opts.facilitator,
          requirement.network as `${string}:${string}`,
          requirement.asset as `0x${string}`,
        ),
        terms: { claimIntervalSeconds: 60, refundIdleSeconds: 3600 },
        stored: false,
        lastClaimAt: now,
        lastRefundCheckAt: now,
        unsettled: true,
        ready: releaseReservations(storage),
      };
      this.lanes.set(key, lane);
    }
    // The offer's current terms (a ServiceOffer edit applies from its next request), kept with
    // the lane so a restarted gateway claims on the same terms before any buyer returns.
    if (terms && (!lane.stored || !sameTerms(lane.terms, terms))) {
      lane.terms = terms;
      await writeLane(this.laneDirectory(key), requirement, terms);
      lane.stored = true;
    }
    await lane.ready;
    return lane;
  }

  private laneDirectory(key: string): string {
    return path.join(this.opts.stateDir, key.replace(/[^a-z0-9]+/g, "-"));
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    for (const lane of this.lanes.values()) {
      try {
        const channels = await lane.storage.list();
        const decision = claimDecision({
          now,
          lastClaimAt: lane.lastClaimAt,
          owed: owed(channels),
          intervalMs: lane.terms.claimIntervalSeconds * 1000,
          ...(lane.terms.claimAmount !== undefined ? { threshold: lane.terms.claimAmount } : {}),
        });
        if (decision !== "wait" || lane.unsettled) await this.claim(lane, now, decision !== "wait");
        const refundEveryMs = Math.min(60_000, lane.terms.refundIdleSeconds * 1000);
        if (now - lane.lastRefundCheckAt >= refundEveryMs) {
          lane.lastRefundCheckAt = now;
          await this.refundIdle(lane, channels, now);
        }
      } catch (err) {
        this.opts.log("channels: claim pass failed; retried on the next pass", {
          level: "error",
          lane: lane.key,
          error: errorMessage(err),
        });
      }
    }
  }

  /** Claims what is owed (when `claimNow`) and settles claimed funds to the receiver. */
  private async claim(lane: Lane, now: number, claimNow = true): Promise<void> {
    if (claimNow) {
      const results = await lane.manager.claim({ maxClaimsPerBatch: 100 });
      lane.lastClaimAt = now;
      for (const r of results) {
        lane.unsettled = true;
        this.opts.log("channels: vouchers claimed", {
          lane: lane.key,
          vouchers: r.vouchers,
          transaction: r.transaction,
        });
      }
    }
    if (!lane.unsettled) return;
    try {
      const settled = await lane.manager.settle();
      this.opts.log("channels: claimed funds settled to the receiver", {
        lane: lane.key,
        transaction: settled.transaction,
      });
    } catch (err) {
      // Nothing claimed and unsettled on chain (the facilitator reads it): nothing to do.
      if (!isNothingToSettle(err)) throw err;
    }
    lane.unsettled = false;
  }

  private async refundIdle(lane: Lane, channels: readonly Channel[], now: number): Promise<void> {
    const targets = idleRefunds(channels, now, lane.terms.refundIdleSeconds * 1000);
    if (targets.length === 0) return;
    const results = await lane.manager.refund(targets.map((c) => c.channelId));
    for (const r of results) {
      lane.unsettled = true;
      this.opts.log("channels: idle channel refunded to its payer", {
        lane: lane.key,
        channel: r.channel,
        transaction: r.transaction,
      });
    }
    if (results.length > 0) await this.claim(lane, now, false);
  }
}

/**
 * A restarted gateway has no request in flight: a reservation left in storage by the process
 * that died would hold its channel "busy" until it expires, so it is released at start. (Sound
 * with one gateway per state directory only; see README, "Channels".)
 */
async function releaseReservations(storage: ChannelStorage): Promise<void> {
  for (const channel of await storage.list()) {
    if (!channel.pendingRequest) continue;
    await storage.updateChannel(channel.channelId, (current) => {
      if (!current?.pendingRequest) return current;
      const { pendingRequest: _released, ...rest } = current;
      return rest;
    });
  }
}

/** What a lane's `lane.json` holds: enough to claim its channels after a restart. */
interface StoredLane {
  readonly requirement: PaymentRequirements;
  readonly terms: LaneTerms;
}

async function writeLane(
  directory: string,
  requirement: PaymentRequirements,
  terms: LaneTerms,
): Promise<void> {
  await fs.mkdir(directory, { recursive: true });
  const file = path.join(directory, "lane.json");
  const stored = {
    requirement: {
      scheme: requirement.scheme,
      network: requirement.network,
      asset: requirement.asset,
      payTo: requirement.payTo,
      amount: requirement.amount,
      maxTimeoutSeconds: requirement.maxTimeoutSeconds,
      extra: requirement.extra,
    },
    terms: { ...terms, claimAmount: terms.claimAmount?.toString() },
  };
  // On disk before the lane takes payments: a restart after a node crash still claims its channels.
  await writeDurably(file, JSON.stringify(stored));
}

async function storedLanes(stateDir: string): Promise<StoredLane[]> {
  let names: string[];
  try {
    names = await fs.readdir(stateDir);
  } catch {
    return [];
  }
  const lanes: StoredLane[] = [];
  for (const name of names) {
    try {
      const raw = JSON.parse(await fs.readFile(path.join(stateDir, name, "lane.json"), "utf8")) as {
        requirement: PaymentRequirements;
        terms: { claimIntervalSeconds: number; refundIdleSeconds: number; claimAmount?: string };
      };
      const { claimAmount, ...rest } = raw.terms;
      lanes.push({
        requirement: raw.requirement,
        terms: { ...rest, ...(claimAmount !== undefined ? { claimAmount: BigInt(claimAmount) } : {}) },
      });
    } catch {
      // not a lane directory
    }
  }
  return lanes;
}

function sameTerms(a: LaneTerms, b: LaneTerms): boolean {
  return (
    a.claimIntervalSeconds === b.claimIntervalSeconds &&
    a.refundIdleSeconds === b.refundIdleSeconds &&
    a.claimAmount === b.claimAmount
  );
}

function refusalMessage(reason: string): string {
  if (reason.includes("cumulative_amount_mismatch"))
    return "the voucher's cumulative amount is not what this channel was charged plus this request's price (a replayed or stale voucher); the 402 carries the channel's state to sign from";
  if (reason.includes("exceeds_balance"))
    return "the voucher's cumulative amount exceeds the channel's deposit: top up the channel";
  if (reason.includes("busy")) return "the channel is serving another request; retry after it completes";
  return "the channel payment was refused";
}
