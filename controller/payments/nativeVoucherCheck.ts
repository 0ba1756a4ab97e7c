/**
 * A faster path in front of @x402/evm's check of a batch-settlement voucher at the gateway.
 *
 * The library's `onBeforeVerify` hook decides a voucher on a channel whose on-chain state it
 * knows: channel id bound to the config, config matching the offer, cumulative amount = charged +
 * price within the deposit, and the payer authorizer's EIP-712 signature, recovered in JavaScript
 * (~4 ms of CPU). This hook makes the same checks, the signature with libsecp256k1
 * (voucherSignature.ts), and answers only when **all of them pass**: it then leaves the request
 * context and the verify result exactly as the library's hook would. Anything else (a deposit, a
 * refund, a channel not yet known or whose on-chain state is stale, a check that fails, a form it
 * does not handle, any error) goes to the library's hook, which decides and words the refusal. So
 * this path can make an accepted voucher cheaper and can never accept what the library refuses;
 * tests/unit/nativeVoucherCheck.test.ts runs both on the same vouchers to hold it so.
 * docs/adr/0007-native-voucher-check.md says why and what it costs to keep.
 */
import { randomBytes } from "node:crypto";
import type { BeforeVerifyHook, VerifyContext } from "@x402/core/server";
import type { PaymentRequirements, VerifyResponse } from "@x402/core/types";
import { isBatchSettlementVoucherPayload } from "@x402/evm";
import { computeChannelId } from "@x402/evm/batch-settlement/client";
import type { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/server";
import type { Address } from "viem";
import { type Caip2, chainIdOf } from "../../api/chains";
import { recoverSigner, voucherDigest } from "./voucherSignature";

/** Which check decided a voucher: this module's, or the library's (every other case). */
export type VoucherCheckPath = "native" | "library";

/** The library's bounds on a channel's withdraw delay (seconds); not exported by it. */
const MIN_WITHDRAW_DELAY = 900;
const MAX_WITHDRAW_DELAY = 2_592_000;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";
const CHANNEL_ID_CACHE_LIMIT = 4096;
/**
 * Reservation ids: a random per-process prefix and a counter (unique like the library's 32 random
 * bytes, without drawing entropy per request; they are only compared for equality).
 */
const PENDING_PREFIX = `0x${randomBytes(24).toString("hex")}`;
let pendingCounter = 0n;
const nextPendingId = () => `${PENDING_PREFIX}${(pendingCounter++).toString(16).padStart(16, "0")}`;

type ChannelConfig = Parameters<typeof computeChannelId>[0];

/** Who signed a voucher digest (signerRecovery.ts off the event loop, or recoverSigner on it). */
export type RecoverSigner = (digest: Uint8Array, signature: string) => Promise<Address | undefined>;

export interface NativeVoucherCheckOptions {
  /** Told which check decided each voucher (metrics). */
  onCheck?: (path: VoucherCheckPath) => void;
  /** Default: on the event loop (`recoverSigner`). */
  recover?: RecoverSigner;
}

const recoverOnLoop: RecoverSigner = async (digest, signature) => recoverSigner(digest, signature);

/**
 * Puts the native check in front of the scheme's own `onBeforeVerify`. Call it before the scheme
 * is registered with an `x402ResourceServer`, which copies the hooks when registering.
 */
export function installNativeVoucherCheck(
  scheme: BatchSettlementEvmScheme,
  options: NativeVoucherCheckOptions = {},
): void {
  const libraryHook = scheme.schemeHooks.onBeforeVerify;
  if (!libraryHook) return;
  scheme.schemeHooks.onBeforeVerify = nativeVoucherCheck(scheme, libraryHook, options);
}

/** The hook: an accepted voucher decided natively, everything else by `libraryHook`. */
export function nativeVoucherCheck(
  scheme: BatchSettlementEvmScheme,
  libraryHook: BeforeVerifyHook,
  { onCheck, recover = recoverOnLoop }: NativeVoucherCheckOptions = {},
): BeforeVerifyHook {
  const channelIds = new Map<string, readonly unknown[]>();
  return async (ctx) => {
    if (!isBatchSettlementVoucherPayload(ctx.paymentPayload.payload)) return libraryHook(ctx);
    const accepted = await acceptVoucher(scheme, ctx, channelIds, recover);
    onCheck?.(accepted ? "native" : "library");
    return accepted ?? libraryHook(ctx);
  };
}

async function acceptVoucher(
  scheme: BatchSettlementEvmScheme,
  ctx: VerifyContext,
  channelIds: Map<string, readonly unknown[]>,
  recover: RecoverSigner,
): Promise<{ skip: true; result: VerifyResponse } | undefined> {
  const { paymentPayload, requirements } = ctx;
  const raw = paymentPayload.payload;
  if (!isBatchSettlementVoucherPayload(raw)) return undefined;
  try {
    const { channelConfig: config, voucher } = raw;
    // Throws (and so leaves the voucher to the library) for a network that is not eip155.
    const chainId = Number(chainIdOf(requirements.network as Caip2));
    if (!configMatches(config, requirements as PaymentRequirements)) return undefined;
    if (!configBindsChannel(channelIds, config, chainId, voucher.channelId)) return undefined;
    if (!ADDRESS.test(config.payerAuthorizer) || config.payerAuthorizer.toLowerCase() === ZERO_ADDRESS) {
      return undefined;
    }
    const signed = BigInt(voucher.maxClaimableAmount);
    const digest = voucherDigest(chainId, voucher.channelId, signed);
    if (!digest) return undefined;
    // The signature first: from reading the channel's state to recording the request context
    // nothing else is awaited, as in the library's hook.
    if ((await recover(digest, voucher.signature)) !== config.payerAuthorizer.toLowerCase()) return undefined;
    const channel = await scheme.getStorage().get(voucher.channelId);
    if (!channel || channel.onchainSyncedAt === undefined) return undefined;
    if (Date.now() - channel.onchainSyncedAt > scheme.getOnchainStateTtlMs()) return undefined;
    if (channel.channelId.toLowerCase() !== voucher.channelId.toLowerCase()) return undefined;
    if (signed !== BigInt(channel.chargedCumulativeAmount) + BigInt(requirements.amount)) return undefined;
    if (signed > BigInt(channel.balance) || signed <= BigInt(channel.totalClaimed)) return undefined;
    // What the library's hook records for a voucher it accepts locally; its afterVerify hook
    // reserves the charge under `pendingId`.
    scheme.mergeRequestContext(paymentPayload, {
      channelId: voucher.channelId,
      pendingId: nextPendingId(),
      channelSnapshot: channel,
      localVerify: true,
    });
    return {
      skip: true,
      result: {
        isValid: true,
        payer: config.payer,
        extra: {
          channelId: voucher.channelId,
          balance: channel.balance,
          totalClaimed: channel.totalClaimed,
          withdrawRequestedAt: channel.withdrawRequestedAt,
          refundNonce: channel.refundNonce.toString(),
        },
      },
    };
  } catch {
    return undefined;
  }
}

/** The config names this offer's receiver, receiver authorizer, token and withdraw delay. */
function configMatches(config: ChannelConfig, requirements: PaymentRequirements): boolean {
  const extra = requirements.extra as Record<string, unknown> | undefined;
  const receiverAuthorizer = extra?.receiverAuthorizer;
  return (
    sameAddress(config.receiver, requirements.payTo) &&
    typeof receiverAuthorizer === "string" &&
    ADDRESS.test(receiverAuthorizer) &&
    receiverAuthorizer.toLowerCase() !== ZERO_ADDRESS &&
    sameAddress(config.receiverAuthorizer, receiverAuthorizer) &&
    sameAddress(config.token, requirements.asset) &&
    (extra?.withdrawDelay === undefined || config.withdrawDelay === Number(extra.withdrawDelay)) &&
    Number.isInteger(config.withdrawDelay) &&
    config.withdrawDelay >= MIN_WITHDRAW_DELAY &&
    config.withdrawDelay <= MAX_WITHDRAW_DELAY
  );
}

function sameAddress(a: unknown, b: unknown): boolean {
  return (
    typeof a === "string" &&
    typeof b === "string" &&
    ADDRESS.test(a) &&
    ADDRESS.test(b) &&
    a.toLowerCase() === b.toLowerCase()
  );
}

/** A config's fields in a fixed order (the buyer chooses them: compared one by one, never joined). */
function configFields(config: ChannelConfig, chainId: number): readonly unknown[] {
  return [
    chainId,
    config.payer,
    config.payerAuthorizer,
    config.receiver,
    config.receiverAuthorizer,
    config.token,
    config.withdrawDelay,
    config.salt,
  ];
}

/**
 * Whether `config` hashes to `channelId` on `chainId` (the library's function), remembered per
 * channel id: a channel's vouchers repeat its config, so after the first one it is a comparison
 * of its fields with the ones that hashed to the id.
 */
function configBindsChannel(
  cache: Map<string, readonly unknown[]>,
  config: ChannelConfig,
  chainId: number,
  channelId: string,
): boolean {
  const id = channelId.toLowerCase();
  const fields = configFields(config, chainId);
  const known = cache.get(id);
  if (known?.every((field, i) => field === fields[i])) return true;
  if (computeChannelId(config, chainId).toLowerCase() !== id) return false;
  if (cache.size >= CHANNEL_ID_CACHE_LIMIT) cache.clear();
  cache.set(id, fields);
  return true;
}
