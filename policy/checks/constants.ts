/**
 * Facts the pack shares with the program. The pack is its own Node project (its own
 * node_modules, compiled by ts-node from this directory), so it does not import ../api; the
 * lists are duplicated here and tests/unit/policy.test.ts asserts they equal the program's.
 */

/** Source of truth: RESERVED_PATHS in api/contract.ts. */
export const RESERVED_PATHS: readonly string[] = [
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
];

/** Source of truth: K3D_MAX_NAME in program/config/parse.ts. */
export const K3D_MAX_NAME = 32;

/** Source of truth: the chains with `mainnet: true` in api/chains.ts (CHAINS). */
export const MAINNET_NETWORKS: readonly string[] = ["eip155:8453", "eip155:1"];

/** Public chains an offer may use by default: those of api/chains.ts with an ERC-8004 registry. */
export const DEFAULT_ALLOWED_NETWORKS: readonly string[] = [
  "eip155:84532",
  "eip155:11155111",
  "eip155:8453",
  "eip155:1",
];

/** The component name of the gateway (components/gateway.ts); its Service has this name. */
export const GATEWAY_SERVICE = "x402-gateway";

/** Resource type tokens the pack inspects. */
export const TYPES = {
  serviceOffer: "kubernetes:obol.org/v1alpha1:ServiceOffer",
  configMap: "kubernetes:core/v1:ConfigMap",
  service: "kubernetes:core/v1:Service",
  deployment: "kubernetes:apps/v1:Deployment",
  // Dynamic resources are typed `pulumi-nodejs:dynamic/<module>:<type>` by @pulumi/pulumi.
  k3dCluster: "pulumi-nodejs:dynamic/obol:K3dCluster",
  agentRegistration: "pulumi-nodejs:dynamic/obol:AgentRegistration",
} as const;
