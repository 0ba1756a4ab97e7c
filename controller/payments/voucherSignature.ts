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
import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import type createKeccakHash from "keccak";
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

/**
 * Keccak-256 through the `keccak` package's native binding (~5 µs a hash here against ~16 µs in
 * viem's JavaScript one, and a voucher takes two); viem's where the binding does not load.
 */
export const nativeKeccak: typeof createKeccakHash | undefined = (() => {
  try {
    return require("keccak/bindings") as typeof createKeccakHash;
  } catch {
    return undefined;
  }
})();

function keccak(data: Buffer): Uint8Array {
  return nativeKeccak ? nativeKeccak("keccak256").update(data).digest() : keccak256(data, "bytes");
}

const domainSeparators = new Map<number, Hex>();

/** The EIP-712 domain separator of batch-settlement vouchers on a chain (viem's, cached per chain). */
function voucherDomainSeparator(chainId: number): Hex {
  let separator = domainSeparators.get(chainId);
  if (!separator) {
    separator = domainSeparator({
      domain: {
        ...BATCH_SETTLEMENT_DOMAIN,
        chainId,
        verifyingContract: getAddress(BATCH_SETTLEMENT_ADDRESS),
      },
    });
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
  const struct = Buffer.alloc(96);
  VOUCHER_TYPE_HASH_BYTES.copy(struct, 0);
  struct.write(channelId.slice(2), 32, "hex");
  struct.writeBigUInt64BE(maxClaimableAmount >> 64n, 80);
  struct.writeBigUInt64BE(maxClaimableAmount & 0xffffffffffffffffn, 88);
  const message = Buffer.alloc(66);
  message[0] = 0x19;
  message[1] = 0x01;
  message.write(voucherDomainSeparator(chainId).slice(2), 2, "hex");
  message.set(keccak(struct), 34);
  return keccak(message);
}

/** Addresses of the public keys seen (a channel's payer authorizer signs every voucher of it). */
const addresses = new Map<string, Address>();
const ADDRESS_CACHE_LIMIT = 4096;

/**
 * The address whose key produced `signature` (65 bytes, r ‖ s ‖ v, v 27 or 28, low s) over
 * `digest`, or undefined when the binding is missing or the signature is of another form
 * (those go to the library, which knows every form viem accepts).
 */
export function recoverSigner(digest: Uint8Array, signature: string): Address | undefined {
  if (!nativeSecp256k1 || !SIGNATURE.test(signature)) return undefined;
  const bytes = Buffer.from(signature.slice(2), "hex");
  const v = bytes[64];
  if (v !== 27 && v !== 28) return undefined;
  if (Buffer.compare(bytes.subarray(32, 64), HALF_ORDER) > 0) return undefined;
  try {
    const publicKey = nativeSecp256k1.ecdsaRecover(bytes.subarray(0, 64), v - 27, digest, false);
    const point = Buffer.from(publicKey.buffer, publicKey.byteOffset + 1, 64);
    const key = point.toString("hex");
    let address = addresses.get(key);
    if (address === undefined) {
      const hash = keccak(point);
      address = `0x${Buffer.from(hash.subarray(12)).toString("hex")}` as Address;
      if (addresses.size >= ADDRESS_CACHE_LIMIT) addresses.clear();
      addresses.set(key, address);
    }
    return address;
  } catch {
    return undefined;
  }
}
