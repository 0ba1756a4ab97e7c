/**
 * The ERC-8004 agent registration document (registration-v1), as the gateway publishes it and
 * as a buyer reads it. `registrations[].agentId` is a JSON number that may exceed 2^53 (agent
 * ids are uint256), so both directions keep its exact digits: the writer emits integer text
 * (api/exactJson.ts), the reader takes the source text of each number instead of a lossy double.
 */
import { z } from "zod";

export const REGISTRATION_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";

export interface RegistrationService {
  name: string;
  endpoint: string;
  version?: string;
  /** Extra keys (the spec allows them): what an obol-stack offer sells. */
  model?: string;
  type?: "inference" | "http";
}

export interface RegistrationDocument {
  type: typeof REGISTRATION_TYPE;
  name: string;
  description: string;
  /** ERC-8004: SHOULD be present (ERC-721 apps show it); a default when the operator sets none. */
  image: string;
  services: RegistrationService[];
  x402Support: boolean;
  active: boolean;
  /** agentId is a uint256: a bigint, serialized exactly with exactJson (never a lossy Number). */
  registrations: { agentId: bigint; agentRegistry: string }[];
  supportedTrust: string[];
}

// Node ≥ 21 (V8 ≥ 11.4): the reviver's `context.source`; not yet in TS's lib.
const JSONX = JSON as unknown as {
  parse(
    text: string,
    reviver: (key: string, value: unknown, context: { source?: string }) => unknown,
  ): unknown;
};

/** JSON.parse that turns integers beyond 2^53 into bigints instead of rounding them. */
export function parseExact(text: string): unknown {
  return JSONX.parse(text, (_key, value, context) =>
    typeof value === "number" &&
    !Number.isSafeInteger(value) &&
    context?.source !== undefined &&
    /^-?[0-9]+$/.test(context.source)
      ? BigInt(context.source)
      : value,
  );
}

const agentIdSchema = z.union([z.bigint(), z.number().int().nonnegative(), z.string().regex(/^[0-9]+$/)]);

/**
 * What a reader needs from a registration document, tolerant as the spec's readers are:
 * `services` or its pre-2026 name `endpoints`, `x402Support` or `x402support`, agent ids as
 * numbers or strings. Unknown keys are kept out of the result.
 */
export const registrationReadSchema = z
  .object({
    type: z.string().optional(),
    name: z.string().optional(),
    services: z.array(z.looseObject({ name: z.string(), endpoint: z.string() })).optional(),
    endpoints: z.array(z.looseObject({ name: z.string(), endpoint: z.string() })).optional(),
    active: z.boolean().optional(),
    registrations: z.array(z.object({ agentId: agentIdSchema, agentRegistry: z.string() })).default([]),
  })
  .transform((doc) => ({
    name: doc.name,
    active: doc.active,
    services: (doc.services ?? doc.endpoints ?? []) as (Record<string, unknown> & {
      name: string;
      endpoint: string;
    })[],
    registrations: doc.registrations.map((r) => ({
      agentId: BigInt(r.agentId),
      agentRegistry: r.agentRegistry,
    })),
  }));
export type RegistrationRead = z.output<typeof registrationReadSchema>;
