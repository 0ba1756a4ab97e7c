import * as assert from "node:assert/strict";
import type { BeforeVerifyHook } from "@x402/core/server";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import { computeChannelId, signVoucher } from "@x402/evm/batch-settlement/client";
import {
  BatchSettlementEvmScheme,
  type Channel,
  InMemoryChannelStorage,
} from "@x402/evm/batch-settlement/server";
import { getAddress, type Hex, hashTypedData, toHex, keccak256 as viemKeccak } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  nativeVoucherCheck,
  type RecoverSigner,
  type VoucherCheckPath,
} from "../../controller/payments/nativeVoucherCheck";
import { SignerRecovery } from "../../controller/payments/signerRecovery";
import {
  keccak,
  nativeKeccakSponge,
  nativeSecp256k1,
  recoverSigner,
  voucherDigest,
} from "../../controller/payments/voucherSignature";
import { defined } from "../harness/assertions";

const NETWORK = "eip155:84532";
const PAY_TO = getAddress("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");
const RECEIVER_AUTHORIZER = getAddress("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
const TOKEN = getAddress("0x036cbd53842c5426634e7929541ec2318f3dcf7e");
const payer = privateKeyToAccount(`0x${"11".repeat(32)}`);
const stranger = privateKeyToAccount(`0x${"22".repeat(32)}`);
const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

type Config = Parameters<typeof computeChannelId>[0];
const baseConfig: Config = {
  payer: payer.address,
  payerAuthorizer: payer.address,
  receiver: PAY_TO,
  receiverAuthorizer: RECEIVER_AUTHORIZER,
  token: TOKEN,
  withdrawDelay: 900,
  salt: `0x${"00".repeat(31)}01`,
};
const baseRequirements: PaymentRequirements = {
  scheme: "batch-settlement",
  network: NETWORK,
  asset: TOKEN,
  amount: "1000",
  payTo: PAY_TO,
  maxTimeoutSeconds: 60,
  extra: { receiverAuthorizer: RECEIVER_AUTHORIZER, withdrawDelay: 900 },
};

function storedChannel(config: Config, over: Partial<Channel> = {}): Channel {
  return {
    channelId: computeChannelId(config, NETWORK),
    channelConfig: config,
    chargedCumulativeAmount: "5000",
    signedMaxClaimable: "5000",
    signature: "0x",
    balance: "100000",
    totalClaimed: "2000",
    withdrawRequestedAt: 0,
    refundNonce: 3,
    onchainSyncedAt: Date.now(),
    lastRequestTimestamp: Date.now(),
    ...over,
  };
}

interface VoucherFields {
  channelId: string;
  maxClaimableAmount: string;
  signature: string;
}

interface Case {
  config?: Config;
  requirements?: PaymentRequirements;
  /** What is stored for the channel; null: nothing. */
  channel?: (config: Config) => Channel | null;
  amount?: string;
  signer?: typeof payer;
  /** Fields of the voucher replaced after signing. */
  voucher?: (voucher: VoucherFields) => Partial<VoucherFields>;
}

async function voucherPayload(c: Case): Promise<PaymentPayload> {
  const config = c.config ?? baseConfig;
  const voucher = await signVoucher(
    c.signer ?? payer,
    computeChannelId(config, NETWORK),
    c.amount ?? "6000",
    NETWORK,
  );
  const fields: VoucherFields = { ...voucher, ...c.voucher?.(voucher) };
  return {
    x402Version: 2,
    accepted: c.requirements ?? baseRequirements,
    payload: { type: "voucher", channelConfig: config, voucher: fields },
  } as unknown as PaymentPayload;
}

/** How the native check recovers signers in the cases below (the gateway uses the worker). */
let recover: RecoverSigner | undefined;

/** One decision by a fresh scheme, with or without the native check in front of its hook. */
async function decide(c: Case, payload: PaymentPayload, channel: Channel | null, native: boolean) {
  const storage = new InMemoryChannelStorage();
  if (channel) await storage.updateChannel(channel.channelId, () => structuredClone(channel));
  const scheme = new BatchSettlementEvmScheme(PAY_TO, { storage, withdrawDelay: 900 });
  const library = defined(scheme.schemeHooks.onBeforeVerify, "the library's onBeforeVerify");
  const paths: VoucherCheckPath[] = [];
  const hook: BeforeVerifyHook = native
    ? nativeVoucherCheck(scheme, library, {
        onCheck: (path) => paths.push(path),
        ...(recover ? { recover } : {}),
      })
    : library;
  const ownPayload = structuredClone(payload);
  const outcome = await hook({
    paymentPayload: ownPayload,
    requirements: c.requirements ?? baseRequirements,
    declaredExtensions: {},
  });
  const { pendingId, ...context } = scheme.readRequestContext(ownPayload) ?? {};
  return { outcome, context, pendingId, paths };
}

/** Runs the library's hook and the native one on the same voucher; they must agree. */
async function agree(c: Case): Promise<VoucherCheckPath | undefined> {
  const payload = await voucherPayload(c);
  const config = c.config ?? baseConfig;
  const channel = c.channel ? c.channel(config) : storedChannel(config);
  const library = await decide(c, payload, channel, false);
  const native = await decide(c, payload, channel, true);
  assert.deepEqual(native.outcome, library.outcome);
  assert.deepEqual(native.context, library.context);
  assert.equal(typeof native.pendingId, typeof library.pendingId);
  if (native.pendingId) assert.match(native.pendingId, /^0x[0-9a-f]{64}$/);
  return native.paths[0];
}

function withSignature(mutate: (bytes: Buffer) => Buffer | string) {
  return (voucher: VoucherFields) => {
    const out = mutate(Buffer.from(voucher.signature.slice(2), "hex"));
    return { signature: typeof out === "string" ? out : `0x${out.toString("hex")}` };
  };
}

describe("native voucher check (libsecp256k1 in front of @x402/evm's hook)", () => {
  it("the bindings load on this platform", () => {
    assert.ok(nativeSecp256k1, "secp256k1's prebuilt N-API library did not load");
    assert.ok(nativeKeccakSponge, "keccak's prebuilt N-API library did not load");
  });

  it("hashes as viem's keccak256 at every length around the sponge's rate, one after another", () => {
    // The sponge is reused: each hash must start from a fresh state.
    for (const length of [0, 1, 31, 32, 64, 65, 96, 135, 136, 137, 271, 272, 273, 1000]) {
      const data = Buffer.alloc(length, length % 251);
      assert.equal(toHex(keccak(data)), viemKeccak(data), `${length} bytes`);
    }
  });

  it("computes the digest viem computes for the library's domain and Voucher type", () => {
    for (const [chainId, amount] of [
      [84532, 1n],
      [8453, 123_456_789n],
      [31337, (1n << 128n) - 1n],
    ] as const) {
      const channelId = `0x${chainId.toString(16).padStart(64, "a")}` as Hex;
      const expected = hashTypedData({
        domain: {
          ...BATCH_SETTLEMENT_DOMAIN,
          chainId,
          verifyingContract: getAddress(BATCH_SETTLEMENT_ADDRESS),
        },
        types: voucherTypes,
        primaryType: "Voucher",
        message: { channelId, maxClaimableAmount: amount },
      });
      assert.equal(toHex(defined(voucherDigest(chainId, channelId, amount), "digest")), expected);
    }
    assert.equal(voucherDigest(84532, `0x${"aa".repeat(32)}`, 1n << 128n), undefined, "beyond uint128");
    assert.equal(voucherDigest(84532, "0x1234", 1n), undefined, "short channel id");
  });

  it("recovers the signer of a voucher the library's client signed, and no one for a tampered one", async () => {
    const channelId = computeChannelId(baseConfig, NETWORK);
    const voucher = await signVoucher(payer, channelId, "6000", NETWORK);
    const digest = defined(voucherDigest(84532, channelId, 6000n), "digest");
    assert.equal(recoverSigner(digest, voucher.signature), payer.address.toLowerCase());
    const tampered = `${voucher.signature.slice(0, 10)}${voucher.signature[10] === "0" ? "1" : "0"}${voucher.signature.slice(11)}`;
    assert.notEqual(recoverSigner(digest, tampered), payer.address.toLowerCase());
    assert.equal(
      recoverSigner(digest, voucher.signature.slice(0, 130)),
      undefined,
      "64-byte form: left to the library",
    );
  });

  for (const where of ["on the event loop", "on a worker thread"] as const)
    describe(`with signers recovered ${where}`, () => {
      let worker: SignerRecovery | undefined;
      before(() => {
        worker = where === "on a worker thread" ? new SignerRecovery() : undefined;
        recover = worker
          ? (digest, signature) => defined(worker, "worker").recover(digest, signature)
          : undefined;
      });
      after(async () => {
        recover = undefined;
        await worker?.close();
      });

      it("accepts a good voucher itself, exactly as the library would", async () => {
        assert.equal(await agree({}), "native");
      });

      it("leaves every other voucher to the library, which decides it as before", async () => {
        const zeroAuthorizer = {
          ...baseConfig,
          payerAuthorizer: "0x0000000000000000000000000000000000000000",
        } as Config;
        const cases: Record<string, Case> = {
          "signed by someone else": { signer: stranger },
          "cumulative above charged + price": { amount: "6001" },
          "cumulative replayed (equal to what was charged)": { amount: "5000" },
          "cumulative lower than charged": { amount: "4000" },
          "beyond the deposit": { channel: (config) => storedChannel(config, { balance: "5500" }) },
          "not above what was claimed": {
            channel: (config) => storedChannel(config, { totalClaimed: "6000" }),
          },
          "on-chain state stale": { channel: (config) => storedChannel(config, { onchainSyncedAt: 1 }) },
          "on-chain state never read": {
            channel: (config) => {
              const { onchainSyncedAt: _unused, ...rest } = storedChannel(config);
              return rest;
            },
          },
          "unknown channel": { channel: () => null },
          "zero payer authorizer": { config: zeroAuthorizer },
          "receiver is not payTo": { requirements: { ...baseRequirements, payTo: stranger.address } },
          "no receiver authorizer offered": {
            requirements: { ...baseRequirements, extra: { withdrawDelay: 900 } },
          },
          "another receiver authorizer": {
            requirements: {
              ...baseRequirements,
              extra: { receiverAuthorizer: stranger.address, withdrawDelay: 900 },
            },
          },
          "another token": { requirements: { ...baseRequirements, asset: stranger.address } },
          "withdraw delay differs from the offer's": {
            requirements: {
              ...baseRequirements,
              extra: { receiverAuthorizer: RECEIVER_AUTHORIZER, withdrawDelay: 901 },
            },
          },
          "withdraw delay below the minimum": {
            config: { ...baseConfig, withdrawDelay: 899 },
            requirements: { ...baseRequirements, extra: { receiverAuthorizer: RECEIVER_AUTHORIZER } },
          },
          "withdraw delay above the maximum": {
            config: { ...baseConfig, withdrawDelay: 2_592_001 },
            requirements: { ...baseRequirements, extra: { receiverAuthorizer: RECEIVER_AUTHORIZER } },
          },
          "voucher names another channel": { voucher: () => ({ channelId: `0x${"ee".repeat(32)}` }) },
          "signature byte flipped": {
            voucher: withSignature((b) => Buffer.from(b.map((x, i) => (i === 5 ? x ^ 1 : x)))),
          },
          "signature with v 0/1": {
            voucher: withSignature((b) => Buffer.from(b.map((x, i) => (i === 64 ? x - 27 : x)))),
          },
          "signature in the 64-byte form": { voucher: withSignature((b) => b.subarray(0, 64)) },
          "malleated signature (high s)": {
            voucher: withSignature((b) => {
              const s = CURVE_ORDER - BigInt(`0x${b.subarray(32, 64).toString("hex")}`);
              const v = b[64] === 27 ? 28 : 27;
              return `0x${b.subarray(0, 32).toString("hex")}${s.toString(16).padStart(64, "0")}${v.toString(16)}`;
            }),
          },
          "not hex": { voucher: () => ({ signature: "0xzz" }) },
          "amount not a number": { voucher: () => ({ maxClaimableAmount: "six thousand" }) },
        };
        for (const [name, c] of Object.entries(cases)) {
          try {
            assert.equal(await agree(c), "library", "left to the library");
          } catch (err) {
            throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
          }
        }
      });

      it("remembers a channel's config by its id, yet leaves a voucher with another config for that id to the library", async () => {
        const storage = new InMemoryChannelStorage();
        const channel = storedChannel(baseConfig);
        await storage.updateChannel(channel.channelId, () => structuredClone(channel));
        const scheme = new BatchSettlementEvmScheme(PAY_TO, { storage, withdrawDelay: 900 });
        const library = defined(scheme.schemeHooks.onBeforeVerify, "the library's onBeforeVerify");
        const paths: VoucherCheckPath[] = [];
        // One hook for both vouchers: the second meets what the first left remembered.
        const hook = nativeVoucherCheck(scheme, library, {
          onCheck: (path) => paths.push(path),
          ...(recover ? { recover } : {}),
        });
        const verify = async (payload: PaymentPayload) => {
          const outcome = await hook({
            paymentPayload: payload,
            requirements: baseRequirements,
            declaredExtensions: {},
          });
          scheme.takeRequestContext(payload);
          return outcome;
        };
        await verify(await voucherPayload({}));
        // The same channel id and a signature by the payer, under a config with another salt
        // (which hashes to another id): the library refuses it, so the native check must not
        // accept it.
        const otherSalt = { ...baseConfig, salt: `0x${"00".repeat(31)}02` } as Config;
        const forged = await voucherPayload({
          voucher: () => ({ channelId: channel.channelId }),
        });
        (forged.payload as { channelConfig: Config }).channelConfig = otherSalt;
        const outcome = await verify(forged);
        assert.deepEqual(paths, ["native", "library"]);
        assert.ok(!outcome || !("skip" in outcome), "not accepted");
      });

      it("accepts a voucher whose accepted base matches after a mixed-case config", async () => {
        const lower = Object.fromEntries(
          Object.entries(baseConfig).map(([k, v]) => [k, typeof v === "string" ? v.toLowerCase() : v]),
        ) as Config;
        assert.equal(await agree({ config: lower }), "native");
      });
      if (where === "on a worker thread")
        it("made those recoveries on the worker", () => {
          const stats = defined(worker, "worker").stats;
          assert.ok(stats.onWorker >= 10, `${stats.onWorker} on the worker`);
          assert.equal(stats.onLoop, 0);
        });
    });
});
