/**
 * What the Pulumi program (components/, program/) and the runtime image (controller/) must agree
 * on, in one place: custom resource kinds, object names, ports, environment variables, mounted
 * file names, the gateway's reserved paths, and the quick-tunnel decision. Either side changing
 * one of these alone would break a running stack, so neither side spells them itself.
 *
 * The runtime imports this module and api/resources.ts, never the stack-config validator
 * (program/config/): an IaC-only change leaves the runtime image untouched.
 */
/** The custom resources, by the names the API server knows them. */
export const KINDS = {
  serviceOffer: { kind: "ServiceOffer", plural: "serviceoffers", singular: "serviceoffer" },
  agentIdentity: { kind: "AgentIdentity", plural: "agentidentities", singular: "agentidentity" },
  purchaseRequest: { kind: "PurchaseRequest", plural: "purchaserequests", singular: "purchaserequest" },
} as const;
export type KindName = keyof typeof KINDS;

/** The plural of each kind (the REST path segment). */
export const PLURALS = {
  serviceOffer: KINDS.serviceOffer.plural,
  agentIdentity: KINDS.agentIdentity.plural,
  purchaseRequest: KINDS.purchaseRequest.plural,
} as const;
export type Plural = (typeof PLURALS)[keyof typeof PLURALS];

/** The one AgentIdentity per namespace the gateway publishes and the controller reports on. */
export const AGENT_IDENTITY_NAME = "default";

/** Deployment (and Service) name of each runtime component. */
export const COMPONENTS = {
  gateway: "x402-gateway",
  controller: "obol-controller",
  facilitator: "x402-facilitator",
  buyer: "x402-buyer",
  cloudflared: "cloudflared",
} as const;

/** Ports. 8081 is used twice, in different pods, with different meanings: hence two names. */
export const PORTS = {
  /** The gateway's public port: offers, catalogs, the storefront (the tunnel's only origin). */
  gateway: 8080,
  /** The gateway's in-cluster port: route reports for the controller and /metrics; never tunnelled. */
  gatewayInternal: 8081,
  /** The controller's own /healthz and /readyz. */
  controllerHealth: 8081,
  facilitator: 8090,
  buyer: 8402,
  /** cloudflared's metrics server: /ready, and /quicktunnel (a quick tunnel's hostname). */
  tunnelMetrics: 2000,
} as const;

/** Environment variables the program sets and the runtime reads. */
export const ENV = {
  port: "PORT",
  internalPort: "INTERNAL_PORT",
  facilitatorUrl: "FACILITATOR_URL",
  publicBaseUrl: "PUBLIC_BASE_URL",
  gatewayInternalUrl: "GATEWAY_INTERNAL_URL",
  gatewayUrl: "GATEWAY_URL",
  /** How many gateway replicas share each offer's limits (docs/adr/0003-ha-gateway.md). */
  gatewayReplicas: "GATEWAY_REPLICAS",
  /** Where the gateway keeps batch-settlement channel state (unset: no channels offered). */
  channelStateDir: "CHANNEL_STATE_DIR",
  quickTunnelMetricsUrl: "QUICK_TUNNEL_METRICS_URL",
  signerKey: "SIGNER_KEY",
  /** The bearer token the gateway presents on the self-run facilitator's /verify and /settle. */
  facilitatorToken: "FACILITATOR_TOKEN",
  /** A Coinbase CDP API key (its id and secret): the gateway signs each facilitator call with it. */
  cdpApiKeyId: "CDP_API_KEY_ID",
  cdpApiKeySecret: "CDP_API_KEY_SECRET",
  rpcUrl: "RPC_URL",
  ledgerPath: "LEDGER_PATH",
} as const;

/** RFC 6750's b64token: what a bearer token (the facilitator's access token) may contain. */
export const BEARER_TOKEN_PATTERN = "[A-Za-z0-9\\-._~+/]+=*";

/** Whether `token` can be sent as `Authorization: Bearer <token>`. */
export function isBearerToken(token: string): boolean {
  return new RegExp(`^${BEARER_TOKEN_PATTERN}$`).test(token);
}

/**
 * Coinbase's hosted x402 facilitator (CDP). Its calls carry a JWT signed with a CDP API key, and
 * the JWT names this host and the path called, so the key works against this URL only.
 */
export const CDP_FACILITATOR_URL = "https://api.cdp.coinbase.com/platform/v2/x402";

/**
 * Whether `secret` has the shape of a CDP API key secret that Coinbase's signer takes: an EC
 * private key in PKCS#8 PEM, or an Ed25519 key as base64 of its 64 bytes (seed, public key).
 */
export function isCdpApiKeySecret(secret: string): boolean {
  const text = secret.trim();
  if (/^-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----$/.test(text))
    return true;
  return /^[A-Za-z0-9+/]+={0,2}$/.test(text) && Buffer.from(text, "base64").length === 64;
}

/** The variable naming the file that holds secret `name` (a mounted Kubernetes Secret). */
export function fileEnv(name: string): `${string}_FILE` {
  return `${name}_FILE`;
}

/** Where a runtime component's Secret is mounted; each key is one file. */
export const SECRETS_DIR = "/var/run/secrets/obol";
/** Secret keys (file names under SECRETS_DIR). */
export const SECRET_FILES = {
  signerKey: "signer-key",
  facilitatorToken: "facilitator-token",
  cdpApiKeyId: "cdp-api-key-id",
  cdpApiKeySecret: "cdp-api-key-secret",
} as const;

/** The mounted path of secret file `key`. */
export function secretFilePath(key: string): string {
  return `${SECRETS_DIR}/${key}`;
}

/** The buyer's spend ledger: on a persistent volume, so a restart never re-spends the budget. */
export const BUYER_LEDGER_DIR = "/var/lib/obol-buyer";
export const BUYER_LEDGER_PATH = `${BUYER_LEDGER_DIR}/ledger.jsonl`;

/** The ERC-8004 registration document the gateway serves; the on-chain agentURI points here. */
export const REGISTRATION_PATH = "/.well-known/agent-registration.json";
/** The origin's x402 discovery document (the paid resources a crawler may list). */
export const X402_DISCOVERY_PATH = "/.well-known/x402";

/** Paths the gateway serves itself; no offer may claim them or anything below them. */
export const RESERVED_PATHS = [
  "/",
  "/api",
  "/.well-known",
  "/skill.md",
  "/openapi.json",
  "/favicon.ico",
  "/metrics",
  "/healthz",
  "/readyz",
  "/internal",
] as const;

/** True when the path equals a reserved path or lies below one ("/" only reserves itself). */
export function isReservedPath(path: string): boolean {
  const normalized = path.replace(/\/+$/, "") || "/";
  return RESERVED_PATHS.some((r) =>
    r === "/" ? normalized === "/" : normalized === r || normalized.startsWith(`${r}/`),
  );
}

/**
 * Whether the controller follows a quick tunnel's rotating URL into offer status: only when a
 * quick tunnel runs and no public origin is configured (a configured origin always wins).
 * The program decides with it whether to hand the controller the tunnel's metrics URL; the
 * controller decides with it whether to poll that URL.
 */
export function followsQuickTunnel(s: { quickTunnel: boolean; publicBaseUrl: string | undefined }): boolean {
  return s.quickTunnel && !s.publicBaseUrl;
}

/** Every runtime process serves Prometheus metrics at this path, on an in-cluster port only. */
export const METRICS_PATH = "/metrics";

/**
 * Where each runtime component's metrics are scraped: a Service port by name (`service`), or the
 * pods' container port (`pod`: the controller has no Service; a PodMonitor scrapes every
 * replica, the standby ones included).
 */
export const METRICS_TARGETS = [
  {
    component: COMPONENTS.gateway,
    via: "service",
    service: `${COMPONENTS.gateway}-internal`,
    port: "internal",
  },
  { component: COMPONENTS.facilitator, via: "service", service: COMPONENTS.facilitator, port: "http" },
  { component: COMPONENTS.buyer, via: "service", service: COMPONENTS.buyer, port: "http" },
  { component: COMPONENTS.controller, via: "pod", port: "http" },
] as const;
