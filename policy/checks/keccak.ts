/**
 * Keccak-256 (the original Keccak padding Ethereum uses, not NIST SHA3-256), for EIP-55
 * checksums. Node's crypto only has SHA3, and the pack keeps its dependencies to the Pulumi
 * SDKs, so this is a small, unoptimized implementation over 64-bit BigInt lanes.
 */

const MASK = (1n << 64n) - 1n;
const RATE_BYTES = 136; // 1088-bit rate for a 256-bit output.

/** Rotation offsets, indexed by x + 5y. */
const ROTATIONS = [
  0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

/** Round constants, derived from the specification's LFSR rather than typed in. */
const ROUND_CONSTANTS: bigint[] = (() => {
  let r = 1;
  const bit = (): number => {
    const out = r & 1;
    r = r & 0x80 ? ((r << 1) ^ 0x71) & 0xff : (r << 1) & 0xff;
    return out;
  };
  const constants: bigint[] = [];
  for (let round = 0; round < 24; round++) {
    let rc = 0n;
    for (let j = 0; j < 7; j++) if (bit()) rc |= 1n << BigInt((1 << j) - 1);
    constants.push(rc);
  }
  return constants;
})();

function rotl(x: bigint, n: number): bigint {
  if (n === 0) return x;
  const s = BigInt(n);
  return ((x << s) | (x >> (64n - s))) & MASK;
}

/** Lane `i` of a fixed-size state; every index here is computed within bounds. */
function at(array: readonly bigint[], i: number): bigint {
  const v = array[i];
  if (v === undefined) throw new RangeError(`keccak: lane ${i} out of range ${array.length}`);
  return v;
}

/** Element `i` of a byte or offset table; every index here is computed within bounds. */
function num(array: Uint8Array | readonly number[], i: number): number {
  const v = array[i];
  if (v === undefined) throw new RangeError(`keccak: index ${i} out of range ${array.length}`);
  return v;
}

function permute(a: bigint[]): void {
  const c: bigint[] = new Array(5).fill(0n);
  const b: bigint[] = new Array(25).fill(0n);
  for (const rc of ROUND_CONSTANTS) {
    for (let x = 0; x < 5; x++)
      c[x] = at(a, x) ^ at(a, x + 5) ^ at(a, x + 10) ^ at(a, x + 15) ^ at(a, x + 20);
    for (let x = 0; x < 5; x++) {
      const d = at(c, (x + 4) % 5) ^ rotl(at(c, (x + 1) % 5), 1);
      for (let y = 0; y < 25; y += 5) a[x + y] = at(a, x + y) ^ d;
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(at(a, x + 5 * y), num(ROTATIONS, x + 5 * y));
      }
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        a[x + y] = at(b, x + y) ^ (~at(b, ((x + 1) % 5) + y) & MASK & at(b, ((x + 2) % 5) + y));
      }
    }
    a[0] = at(a, 0) ^ rc;
  }
}

/** Keccak-256 of `data`, as lowercase hex without 0x. */
export function keccak256Hex(data: Uint8Array): string {
  const padded = new Uint8Array(Math.ceil((data.length + 1) / RATE_BYTES) * RATE_BYTES);
  padded.set(data);
  padded[data.length] = num(padded, data.length) ^ 0x01;
  padded[padded.length - 1] = num(padded, padded.length - 1) ^ 0x80;
  const state: bigint[] = new Array(25).fill(0n);
  for (let offset = 0; offset < padded.length; offset += RATE_BYTES) {
    for (let lane = 0; lane < RATE_BYTES / 8; lane++) {
      let v = 0n;
      for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(num(padded, offset + lane * 8 + i));
      state[lane] = at(state, lane) ^ v;
    }
    permute(state);
  }
  let hex = "";
  for (let lane = 0; lane < 4; lane++) {
    for (let i = 0; i < 8; i++)
      hex += Number((at(state, lane) >> BigInt(8 * i)) & 0xffn)
        .toString(16)
        .padStart(2, "0");
  }
  return hex;
}
