/**
 * The self-run facilitator's access token: a bearer credential (RFC 6750) the gateway presents
 * on /verify and /settle. Without it, anything that reaches the facilitator's Service (any pod
 * in the cluster, another operator's included) could have it submit settlements with its key or
 * sign a batch-settlement refund as the channels' receiver authorizer, returning a buyer's deposit
 * before the seller's vouchers are claimed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createCdpAuthHeaders } from "@coinbase/x402";
import { BEARER_TOKEN_PATTERN, ENV, fileEnv, isBearerToken, isCdpApiKeySecret } from "../../api/contract";
import { errorMessage } from "./log";
import { readSecret, secretConfigured } from "./secrets";

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

/** What @x402/core's facilitator client asks for before each call: headers per operation. */
export type FacilitatorAuthHeaders = () => Promise<{
  verify: Record<string, string>;
  settle: Record<string, string>;
  supported: Record<string, string>;
}>;

/**
 * Coinbase's facilitator (CDP): each call carries a JWT signed with the API key, made by
 * @coinbase/x402 (its `createCdpAuthHeaders`: a fresh JWT per call, valid two minutes, naming the
 * method, host and path it is for).
 */
export function cdpAuthHeaders(keyId: string, keySecret: string): FacilitatorAuthHeaders {
  const make = createCdpAuthHeaders(keyId, keySecret);
  if (!make) throw new Error("@coinbase/x402 made no CDP header factory");
  return async () => {
    const headers = await make();
    return { verify: headers.verify ?? {}, settle: headers.settle ?? {}, supported: headers.supported ?? {} };
  };
}

/**
 * How the gateway authenticates to its facilitator, from its environment: a bearer token
 * (FACILITATOR_TOKEN: the self-run facilitator's, or a hosted one's), a CDP API key
 * (CDP_API_KEY_ID and CDP_API_KEY_SECRET: Coinbase's facilitator), or nothing. A CDP key is
 * tried once here, so a key the signer cannot use stops the start with the reason rather than
 * failing every paid request. Errors name the variables, never the values.
 */
export async function facilitatorAuthFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ createAuthHeaders: FacilitatorAuthHeaders } | Record<string, never>> {
  const token = secretConfigured(ENV.facilitatorToken, env);
  const id = secretConfigured(ENV.cdpApiKeyId, env);
  const secret = secretConfigured(ENV.cdpApiKeySecret, env);
  if (!id && !secret) {
    return token ? { createAuthHeaders: facilitatorAuthHeaders(readSecret(ENV.facilitatorToken, env)) } : {};
  }
  const named = (name: string) => `${fileEnv(name)} (or ${name})`;
  if (token)
    throw new Error(
      `${named(ENV.facilitatorToken)} and a CDP API key are both set: a facilitator takes one of them; unset one`,
    );
  if (!id || !secret)
    throw new Error(
      `a CDP API key needs both ${named(ENV.cdpApiKeyId)} and ${named(ENV.cdpApiKeySecret)}; ${named(id ? ENV.cdpApiKeySecret : ENV.cdpApiKeyId)} is not set`,
    );
  const keySecret = readSecret(ENV.cdpApiKeySecret, env);
  if (!isCdpApiKeySecret(keySecret))
    throw new Error(
      `${ENV.cdpApiKeySecret} is not a CDP API key secret: an EC private key in PKCS#8 PEM, or an Ed25519 key as base64 of 64 bytes (the value is not shown)`,
    );
  const createAuthHeaders = cdpAuthHeaders(readSecret(ENV.cdpApiKeyId, env), keySecret);
  try {
    await createAuthHeaders();
  } catch (err) {
    throw new Error(`the CDP API key cannot sign a facilitator call: ${errorMessage(err)}`, { cause: err });
  }
  return { createAuthHeaders };
}
