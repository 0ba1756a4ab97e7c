/**
 * The self-run facilitator's access token: a bearer credential (RFC 6750) the gateway presents
 * on /verify and /settle. Without it, anything that reaches the facilitator's Service (any pod
 * in the cluster, another operator's included) could have it submit settlements with its key or
 * sign a batch-settlement refund as the channels' receiver authorizer, returning a buyer's deposit
 * before the seller's vouchers are claimed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { BEARER_TOKEN_PATTERN, isBearerToken } from "../../api/contract";

const BEARER = new RegExp(`^Bearer +(${BEARER_TOKEN_PATTERN}) *$`, "i");

/** The token as the facilitator client of @x402/core sends it, on every path it calls. */
export function facilitatorAuthHeaders(token: string): () => Promise<{
  verify: Record<string, string>;
  settle: Record<string, string>;
  supported: Record<string, string>;
}> {
  const headers = { Authorization: `Bearer ${token}` };
  return async () => ({ verify: headers, settle: headers, supported: headers });
}

/**
 * Whether an `Authorization` header presents `token`. Compared over digests in constant time, so
 * the time taken tells nothing about the token's length or how much of it a guess matched.
 */
export function presentsToken(authorization: string | undefined, token: string): boolean {
  const presented = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
  if (presented === undefined) return false;
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(presented), digest(token));
}

/** A token the facilitator can require: non-empty and sendable as a bearer credential. */
export function validAccessToken(token: string): boolean {
  return isBearerToken(token);
}
