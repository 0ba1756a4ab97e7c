/**
 * The validated stack config the program declares resources from. The types carry the
 * validator's guarantees (a hosted facilitator has its URL, a self-run one its RPC URL, a named
 * tunnel its hostname, a registration its agentURI), so the program needs no `!` or casts.
 */
import type { Caip2 } from "../../api/chains";
import type { PurchaseAgent, ServiceOfferSpec } from "../../api/resources";

/** Config keys that hold secrets; they must be set with `pulumi config set --secret`. */
export const SECRET_KEYS = [
  "kubeconfig",
  "facilitatorSignerKey",
  "tunnelToken",
  "identitySignerKey",
  "buyerSignerKey",
  /** Optional: a bearer token a hosted facilitator requires (a self-run one's is generated). */
  "facilitatorToken",
  /** Optional: a Coinbase CDP API key, for Coinbase's hosted facilitator (both or neither). */
  "cdpApiKeyId",
  "cdpApiKeySecret",
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

/** k3d rejects cluster names longer than this (its container names derive from it). */
export const K3D_MAX_NAME = 32;
export const K3D_PREFIX = "obol-";

export const DEFAULT_IMAGES = {
  runtime: "ghcr.io/obol-stack/runtime:0.1.0",
  litellm: "ghcr.io/berriai/litellm:main-v1.74.9-stable",
  cloudflared: "cloudflare/cloudflared:2025.7.0",
} as const;

export const DEFAULT_FACILITATOR_URL = "https://x402.org/facilitator";

export interface ParseContext {
  stack: string;
  /** Keys (without project prefix) that Pulumi stores encrypted. */
  secretKeys: ReadonlySet<string>;
}

export interface ClusterConfig {
  mode: "k3d" | "kubeconfig";
  name: string;
  servers: number;
  agents: number;
  k3sImage?: string;
}

export interface LiteLLMModelConfig {
  name: string;
  model: string;
  apiBase?: string;
  /** A secret config key holding the model's API key. */
  apiKeySecret?: string;
}

export type FacilitatorConfig =
  /** `auth: "cdp"`: Coinbase's facilitator, each call signed with the cdpApiKeyId/cdpApiKeySecret key. */
  | { mode: "hosted"; url: string; auth?: "cdp" }
  /** Self-run: settles on the chain behind `rpcUrl` with the `facilitatorSignerKey` wallet. */
  | { mode: "self"; rpcUrl: string };

export type TunnelConfig = { mode: "none" } | { mode: "quick" } | { mode: "named"; hostname: string };

/** The x402 gateway's pods (docs/adr/0003-ha-gateway.md). */
export interface GatewayConfig {
  replicas: number;
}

/**
 * Prometheus Operator objects (ServiceMonitor/PodMonitor, PrometheusRule, dashboard ConfigMap):
 * `auto` creates them when the cluster serves the operator's CRDs, `true` requires them.
 */
export interface MonitoringConfig {
  serviceMonitors: "auto" | boolean;
}

export interface RegistrationChain {
  network: Caip2;
  rpcUrl: string;
  registry: `0x${string}`;
  adoptAgentId?: string;
}

export interface IdentityConfig {
  name: string;
  description: string;
  image?: string;
  /** Present when identity.register is true: where the registrations point and on which chains. */
  registration?: { agentURI: string; chains: RegistrationChain[] };
}

export interface OfferConfig {
  name: string;
  spec: ServiceOfferSpec;
}

/** A purchase names its seller by exactly one of `endpoint` and `agent`. */
export type PurchaseConfig = PurchaseSeller & {
  name: string;
  model: string;
  payment: {
    network: Caip2;
    asset?: string;
    decimals: number;
    maxPrice: string;
    rpcUrl?: string;
  };
  budget: { maxPerRequest: string; maxPerDay?: string; maxTotal?: string };
  /** Pay batch-settlement sellers through a channel; `deposit` in token units. */
  channels?: { deposit?: string; withdrawAfterIdleSeconds?: number };
};

export type PurchaseSeller =
  /** The seller's offer URL. */
  | { endpoint: string; agent?: never }
  /** The seller's ERC-8004 identity, resolved by the buyer to an offer endpoint. */
  | { agent: PurchaseAgent; endpoint?: never };

export interface StackConfig {
  cluster: ClusterConfig;
  namespace: string;
  /** `buildRuntime`: build the runtime image locally and import it into k3d (k3d mode, no images.runtime). */
  images: { runtime: string; litellm: string; cloudflared: string; buildRuntime: boolean };
  litellm: { models: LiteLLMModelConfig[] };
  facilitator: FacilitatorConfig;
  tunnel: TunnelConfig;
  gateway: GatewayConfig;
  monitoring: MonitoringConfig;
  /** The stable public origin, when one is known (explicit, or a named tunnel's hostname). */
  publicBaseUrl?: string;
  identity: IdentityConfig;
  offers: OfferConfig[];
  purchases: PurchaseConfig[];
  /** Secret keys this stack needs, each of which is present and stored as a secret. */
  secrets: SecretKey[];
}
