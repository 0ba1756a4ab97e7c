/**
 * `identity`: the agent's registration document, and with `register: true` one ERC-8004
 * registration per chain the offers are paid on, which needs a stable public URL.
 */
import { getAddress, isAddress } from "viem";
import { z } from "zod";
import { type Caip2, chainInfo, toCaip2 } from "../../api/chains";
import { REGISTRATION_PATH } from "../../api/contract";
import { agentIdentitySpecSchema } from "../../api/resources";
import { httpUrl } from "./fields";
import { joinPath } from "./issues";
import type { SectionContext } from "./platform";
import type { IdentityConfig, RegistrationChain, TunnelConfig } from "./types";

export const identitySchema = z
  .strictObject({
    register: z.boolean().default(false),
    name: z.string().min(1).max(128).default("Obol Stack agent"),
    description: z.string().max(2048).default(""),
    image: z.string().optional(),
    rpcUrls: z.record(z.string(), z.string()).default({}),
    registries: z.record(z.string(), z.string()).default({}),
    agentIds: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  })
  .default({
    register: false,
    name: "Obol Stack agent",
    description: "",
    rpcUrls: {},
    registries: {},
    agentIds: {},
  });

export function identity(
  cfg: z.infer<typeof identitySchema>,
  networks: ReadonlySet<Caip2>,
  publicBaseUrl: string | undefined,
  tunnel: TunnelConfig | undefined,
  c: SectionContext,
): IdentityConfig {
  const document = {
    name: cfg.name,
    description: cfg.description,
    ...(cfg.image !== undefined ? { image: cfg.image } : {}),
  };
  const stored = agentIdentitySpecSchema.safeParse({ ...document, registrations: [] });
  if (!stored.success) {
    for (const issue of stored.error.issues) {
      c.issues.add(
        joinPath("identity", issue.path),
        `${issue.message}: the cluster would reject the AgentIdentity`,
      );
    }
  }
  if (!cfg.register) return document;

  c.requireSecret("identitySignerKey", "when identity.register is true (the key that owns the agent NFT)");
  if (!publicBaseUrl) {
    c.issues.add(
      "identity.register",
      tunnel?.mode === "quick"
        ? "quick-tunnel URLs change on every restart, so the on-chain agentURI would go stale: use tunnel.mode named, or set publicBaseUrl"
        : "registration needs a stable public URL: set publicBaseUrl or use a named tunnel",
    );
  }
  if (networks.size === 0) c.issues.add("identity.register", "no offer declares a network to register on");
  const chains: RegistrationChain[] = [];
  for (const network of networks) {
    const chain = registrationChain(cfg, network, c);
    if (chain) chains.push(chain);
  }
  if (!publicBaseUrl) return document;
  return { ...document, registration: { agentURI: `${publicBaseUrl}${REGISTRATION_PATH}`, chains } };
}

function registrationChain(
  cfg: z.infer<typeof identitySchema>,
  network: Caip2,
  c: SectionContext,
): RegistrationChain | undefined {
  const rawRpcUrl = lookup(cfg.rpcUrls, network);
  const registry = lookup(cfg.registries, network) ?? chainInfo(network)?.identityRegistry;
  const adopt = lookup(cfg.agentIds, network);
  let ok = true;
  if (!rawRpcUrl) {
    c.issues.add("identity.rpcUrls", `no RPC URL for ${network}: add identity.rpcUrls["${network}"]`);
    ok = false;
  } else if (!httpUrl(rawRpcUrl, "identity.rpcUrls", c.issues, `an http(s) JSON-RPC URL of ${network}`)) {
    ok = false;
  }
  if (!registry) {
    c.issues.add(
      "identity.registries",
      `no IdentityRegistry known for ${network}: add identity.registries["${network}"]`,
    );
    ok = false;
  } else if (!isAddress(registry, { strict: false })) {
    c.issues.add("identity.registries", `"${registry}" for ${network} is not an address`);
    ok = false;
  }
  if (adopt !== undefined && !/^[0-9]+$/.test(String(adopt))) {
    c.issues.add("identity.agentIds", `agentId for ${network} must be a non-negative integer`);
    ok = false;
  } else if (typeof adopt === "number" && !Number.isSafeInteger(adopt)) {
    c.issues.add(
      "identity.agentIds",
      `agentId for ${network} is a number above 2^53, which was already rounded when the config was read: write it as a quoted string`,
    );
    ok = false;
  }
  if (!ok || !rawRpcUrl || !registry) return undefined;
  return {
    network,
    rpcUrl: rawRpcUrl,
    registry: getAddress(registry),
    ...(adopt !== undefined ? { adoptAgentId: String(adopt) } : {}),
  };
}

/** Looks a chain-keyed map up by CAIP-2 or legacy name. */
function lookup<T>(map: Record<string, T>, network: Caip2): T | undefined {
  for (const [key, value] of Object.entries(map)) {
    try {
      if (toCaip2(key) === network) return value;
    } catch {
      // an unknown key is simply not this chain
    }
  }
  return undefined;
}
