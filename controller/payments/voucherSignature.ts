/**
 * Who signed a batch-settlement voucher, computed with bitcoin-core's libsecp256k1 (the
 * `secp256k1` package's N-API binding) instead of viem's JavaScript curve arithmetic.
 *
 * Why: every paid call on a channel carries a new voucher, and @x402/evm checks it with viem's
 * `verifyTypedData`, whose public-key recovery costs ~4 ms of CPU per voucher on this project's
 * 2-core machines against ~0.15 ms here; it was most of what a channel payment cost the gateway
 * (docs/adr/0007-native-voucher-check.md). The EIP-712 digest is the library's: the domain and
 * the `Voucher` type come from @x402/evm, and a unit test holds the digest equal to viem's
 * `hashTypedData`.
 *
 * Everything here answers "undefined" rather than throwing: a caller that cannot get an answer
 * hands the voucher to the library, which decides.
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import type Secp256k1 from "secp256k1";
import { type Address, domainSeparator, getAddress, type Hex, keccak256, toHex } from "viem";

/** The EIP-712 type string of a voucher, from the library's own type list. */
export const VOUCHER_TYPE = `Voucher(${voucherTypes.Voucher.map((field) => `${field.type} ${field.name}`).join(",")})`;
const VOUCHER_TYPE_HASH_BYTES = Buffer.from(keccak256(toHex(VOUCHER_TYPE), "bytes"));
const UINT128_LIMIT = 1n << 128n;
/** secp256k1's group order over two: signatures with a larger `s` are left to the library. */
const HALF_ORDER = Buffer.from("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0", "hex");
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const CHANNEL_ID = /^0x[0-9a-fA-F]{64}$/;

/**
 * The native binding, or undefined where its prebuilt library does not load (another platform):
 * then every voucher goes to the library. The package's own fallback (elliptic, JavaScript) is
 * skipped on purpose, as it would be no faster than viem.
 */
export const nativeSecp256k1: typeof Secp256k1 | undefined = (() => {
  try {
    return require("secp256k1/bindings") as typeof Secp256k1;
  } catch {
    return undefined;
  }
})();

/** The `keccak` package's native sponge (its N-API class), used without the package's stream wrapper. */
interface KeccakSponge {
  initialize(rate: number, capacity: number): void;
  absorb(data: Buffer): void;
  squeeze(length: number): Buffer;
}

/**
 * Keccak-256 through the `keccak` package's native binding, called directly: one sponge,
 * re-initialized per hash (~4 µs here against ~16 µs in viem's JavaScript one; the package's
 * `createKeccakHash` builds a stream per hash, which cost more than the hashing). A voucher takes
 * two hashes. viem's where the binding does not load.
 */
export const nativeKeccakSponge: KeccakSponge | undefined = (() => {
  try {
    const keccakDir = path.dirname(require.resolve("keccak/package.json"));
    // The package's own loader, resolved from the package (its dependency, not ours).
    const load = createRequire(require.resolve("keccak"))("node-gyp-build") as (dir: string) => unknown;
    const Sponge = load(keccakDir);
    if (typeof Sponge !== "function") return undefined;
    return new (Sponge as new () => KeccakSponge)();
  } catch {
    return undefined;
  }
})();

/** Keccak-256 rate and capacity, in bits. */
const KECCAK256_RATE = 1088;
const KECCAK256_CAPACITY = 512;

export function keccak(data: Buffer): Uint8Array {
  if (!nativeKeccakSponge) return keccak256(data, "bytes");
  nativeKeccakSponge.initialize(KECCAK256_RATE, KECCAK256_CAPACITY);
  nativeKeccakSponge.absorb(data);
  return nativeKeccakSponge.squeeze(32);
}

const domainSeparators = new Map<number, Buffer>();
/** hashStruct's input: the type hash, the channel id, the amount (uint256: 16 zero bytes, then 16). */
const VOUCHER_STRUCT = Buffer.alloc(96);
VOUCHER_TYPE_HASH_BYTES.copy(VOUCHER_STRUCT, 0);
/** The signed message: 0x1901, the domain separator, the struct hash. */
const VOUCHER_MESSAGE = Buffer.alloc(66);
VOUCHER_MESSAGE[0] = 0x19;
VOUCHER_MESSAGE[1] = 0x01;

/** The EIP-712 domain separator of batch-settlement vouchers on a chain (viem's, cached per chain). */
function voucherDomainSeparator(chainId: number): Buffer {
  let separator = domainSeparators.get(chainId);
  if (!separator) {
    const hex: Hex = domainSeparator({
      domain: {
        ...BATCH_SETTLEMENT_DOMAIN,
        chainId,
        verifyingContract: getAddress(BATCH_SETTLEMENT_ADDRESS),
      },
    });
    separator = Buffer.from(hex.slice(2), "hex");
    domainSeparators.set(chainId, separator);
  }
  return separator;
}

/**
 * The EIP-712 digest a voucher's signature covers, or undefined for a channel id that is not 32
 * bytes or an amount outside uint128 (which viem refuses to encode). Bytes, not hex: it goes
 * straight to libsecp256k1, and hex round trips were a visible part of the cost.
 */
export function voucherDigest(
  chainId: number,
  channelId: string,
  maxClaimableAmount: bigint,
): Uint8Array | undefined {
  if (!CHANNEL_ID.test(channelId) || maxClaimableAmount < 0n || maxClaimableAmount >= UINT128_LIMIT)
    return undefined;
  // Scratch buffers, reused: the hashes are computed before this returns.
  const struct = VOUCHER_STRUCT;
  struct.write(channelId.slice(2), 32, "hex");
  struct.writeBigUInt64BE(maxClaimableAmount >> 64n, 80);
  struct.writeBigUInt64BE(maxClaimableAmount & 0xffffffffffffffffn, 88);
  const message = VOUCHER_MESSAGE;
  voucherDomainSeparator(chainId).copy(message, 2);
  message.set(keccak(struct), 34);
  return keccak(message);
}

/** Addresses of the public keys seen (a channel's payer authorizer signs every voucher of it). */
const addresses = new Map<string, Address>();
const ADDRESS_CACHE_LIMIT = 4096;

/**
 * The parts of a signature of the one form recovered natively (65 bytes, r ‖ s ‖ v, v 27 or 28,
 * low s), or undefined for any other form (those go to the library, which knows every form viem
 * accepts).
 */
export function signatureParts(signature: string): { rs: Buffer; recoveryId: number } | undefined {
  if (!SIGNATURE.test(signature)) return undefined;
  const bytes = Buffer.from(signature.slice(2), "hex");
  const v = bytes[64];
  if (v !== 27 && v !== 28) return undefined;
  if (Buffer.compare(bytes.subarray(32, 64), HALF_ORDER) > 0) return undefined;
  return { rs: bytes.subarray(0, 64), recoveryId: v - 27 };
}

/**
 * The address whose key produced `signature` over `digest`, or undefined when the binding is
 * missing or the signature is not of the form `signatureParts` accepts.
 */
export function recoverSigner(digest: Uint8Array, signature: string): Address | undefined {
  const parts = signatureParts(signature);
  if (!nativeSecp256k1 || !parts) return undefined;
  try {
    const publicKey = nativeSecp256k1.ecdsaRecover(parts.rs, parts.recoveryId, digest, false);
    return addressOfPublicKey(Buffer.from(publicKey.buffer, publicKey.byteOffset + 1, 64));
  } catch {
    return undefined;
  }
}

/** The address of an uncompressed public key's 64-byte point (x ‖ y), remembered per key. */
export function addressOfPublicKey(point: Buffer): Address {
  const key = point.toString("hex");
  let address = addresses.get(key);
  if (address === undefined) {
    address = `0x${Buffer.from(keccak(point).subarray(12)).toString("hex")}` as Address;
    if (addresses.size >= ADDRESS_CACHE_LIMIT) addresses.clear();
    addresses.set(key, address);
  }
  return address;
}
