/**
 * The obol-stack policies. Each one is a thin adapter: it picks the resources it applies to,
 * reads its config (with defaults), and reports what a pure check in ./checks returns, so the
 * rules are unit-testable without the Pulumi runtime. `new PolicyPack` lives in index.ts.
 */
import type {
  EnforcementLevel,
  Policies,
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import { checkK3dName } from "./checks/cluster";
import { DEFAULT_ALLOWED_NETWORKS, GATEWAY_SERVICE, TYPES } from "./checks/constants";
import { checkServiceType, checkTunnelOrigin } from "./checks/exposure";
import {
  checkMainnetOptIn,
  checkNetworkAllowed,
  checkOffersUnique,
  checkPayTo,
  checkPrices,
  checkReservedPath,
  type PriceLimits,
} from "./checks/offers";
import { checkAgentUri, checkRegistrationTunnel } from "./checks/registration";
import { checkConfigMapSecrets, checkEnvSecrets } from "./checks/secrets";
import { type JsonObject, plainProps } from "./checks/values";
import { checkImagesPinned, checkNonRoot, checkResources, WORKLOAD_TYPES } from "./checks/workloads";

// The SDK types tests need to drive the policies (the root project has no @pulumi/policy).
export type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";

/** Policy config keys and their defaults (also declared as JSON-schema defaults below). */
export interface PolicyConfig {
  "offer-price-bounds": PriceLimits;
  "offer-network-allowlist": { allowedNetworks: string[] };
  "offer-mainnet-opt-in": { allowMainnet: boolean };
  "images-pinned": { requireDigest: boolean };
  "tunnel-gateway-only": { gatewayService: string };
}

export const CONFIG_DEFAULTS: PolicyConfig = {
  "offer-price-bounds": { maxPricePerRequest: "10", maxPricePerMTok: "100" },
  "offer-network-allowlist": { allowedNetworks: [...DEFAULT_ALLOWED_NETWORKS] },
  "offer-mainnet-opt-in": { allowMainnet: false },
  "images-pinned": { requireDigest: false },
  "tunnel-gateway-only": { gatewayService: GATEWAY_SERVICE },
};

type ConfigOf<K extends keyof PolicyConfig> = PolicyConfig[K];

function configOf<K extends keyof PolicyConfig>(
  name: K,
  args: { getConfig<T extends object>(): T },
): ConfigOf<K> {
  return { ...CONFIG_DEFAULTS[name], ...args.getConfig<Partial<ConfigOf<K>>>() };
}

const DECIMAL_PATTERN = "^[0-9]+(\\.[0-9]+)?$";

/** A resource policy that reports `check(props)` for resources of the given types. */
function resourcePolicy(
  meta: Omit<ResourceValidationPolicy, "validateResource">,
  types: readonly string[],
  check: (type: string, props: JsonObject, args: ResourceValidationArgs) => string[],
): ResourceValidationPolicy {
  return {
    ...meta,
    validateResource: (args: ResourceValidationArgs, report: ReportViolation): void => {
      if (!types.includes(args.type)) return;
      for (const message of check(args.type, plainProps(args.props), args)) report(message);
    },
  };
}

/** A stack policy over plain resources. */
function stackPolicy(
  meta: Omit<StackValidationPolicy, "validateStack">,
  check: (
    resources: { type: string; props: JsonObject; urn: string }[],
    args: StackValidationArgs,
  ) => string[],
): StackValidationPolicy {
  return {
    ...meta,
    validateStack: (args: StackValidationArgs, report: ReportViolation): void => {
      const resources = args.resources.map((r: PolicyResource) => ({
        type: r.type,
        props: plainProps(r.props),
        urn: r.urn,
      }));
      for (const message of check(resources, args)) report(message);
    },
  };
}

const mandatory: EnforcementLevel = "mandatory";
const advisory: EnforcementLevel = "advisory";

export const offerPayToChecksummed = resourcePolicy(
  {
    name: "offer-payto-checksummed",
    description: "Every payment's payTo is an EIP-55 checksummed address and not the zero address.",
    enforcementLevel: mandatory,
    severity: "critical",
  },
  [TYPES.serviceOffer],
  (_type, props) => checkPayTo(props),
);

export const offerPriceBounds = resourcePolicy(
  {
    name: "offer-price-bounds",
    description: "Every price is a positive decimal at or below the configured ceiling.",
    enforcementLevel: mandatory,
    severity: "high",
    configSchema: {
      properties: {
        maxPricePerRequest: {
          type: "string",
          pattern: DECIMAL_PATTERN,
          default: CONFIG_DEFAULTS["offer-price-bounds"].maxPricePerRequest,
          description: "Highest price per request, in token units (USDC).",
        },
        maxPricePerMTok: {
          type: "string",
          pattern: DECIMAL_PATTERN,
          default: CONFIG_DEFAULTS["offer-price-bounds"].maxPricePerMTok,
          description: "Highest price per million tokens, in token units (USDC).",
        },
      },
    },
  },
  [TYPES.serviceOffer],
  (_type, props, args) => checkPrices(props, configOf("offer-price-bounds", args)),
);

export const offerNetworkAllowlist = resourcePolicy(
  {
    name: "offer-network-allowlist",
    description: "Offers accept payment only on allowlisted chains (CAIP-2).",
    enforcementLevel: mandatory,
    severity: "high",
    configSchema: {
      properties: {
        allowedNetworks: {
          type: "array",
          items: { type: "string", pattern: "^eip155:[0-9]+$" },
          default: CONFIG_DEFAULTS["offer-network-allowlist"].allowedNetworks,
          description: "CAIP-2 networks offers may use.",
        },
      },
    },
  },
  [TYPES.serviceOffer],
  (_type, props, args) =>
    checkNetworkAllowed(props, configOf("offer-network-allowlist", args).allowedNetworks),
);

export const offerMainnetOptIn = resourcePolicy(
  {
    name: "offer-mainnet-opt-in",
    description: "Offers on a mainnet (real money) need an explicit opt-in.",
    enforcementLevel: mandatory,
    severity: "high",
    configSchema: {
      properties: {
        allowMainnet: {
          type: "boolean",
          default: CONFIG_DEFAULTS["offer-mainnet-opt-in"].allowMainnet,
          description: "Allow offers on mainnets such as eip155:1 and eip155:8453.",
        },
      },
    },
  },
  [TYPES.serviceOffer],
  (_type, props, args) => checkMainnetOptIn(props, configOf("offer-mainnet-opt-in", args).allowMainnet),
);

export const offerPathNotReserved = resourcePolicy(
  {
    name: "offer-path-not-reserved",
    description: "No offer claims a path the gateway serves itself.",
    enforcementLevel: mandatory,
    severity: "high",
  },
  [TYPES.serviceOffer],
  (_type, props) => checkReservedPath(props),
);

export const offerRoutesUnique: StackValidationPolicy = stackPolicy(
  {
    name: "offer-routes-unique",
    description: "No two offers share a path (or nest one in the other) or a hostname.",
    enforcementLevel: mandatory,
    severity: "high",
  },
  (resources) =>
    checkOffersUnique(resources.filter((r) => r.type === TYPES.serviceOffer).map((r) => r.props)),
);

export const noPlaintextSecrets = resourcePolicy(
  {
    name: "no-plaintext-secrets",
    description: "No secret in a ConfigMap or a container env literal; secrets live in Secrets.",
    enforcementLevel: mandatory,
    severity: "critical",
  },
  [TYPES.configMap, ...WORKLOAD_TYPES],
  (type, props) => (type === TYPES.configMap ? checkConfigMapSecrets(props) : checkEnvSecrets(type, props)),
);

export const imagesPinned = resourcePolicy(
  {
    name: "images-pinned",
    description: "Every container image is pinned by digest or an exact tag, never latest or a moving tag.",
    enforcementLevel: mandatory,
    severity: "medium",
    configSchema: {
      properties: {
        requireDigest: {
          type: "boolean",
          default: CONFIG_DEFAULTS["images-pinned"].requireDigest,
          description: "Accept only digests (name@sha256:...), not tags.",
        },
      },
    },
  },
  WORKLOAD_TYPES,
  (type, props, args) => checkImagesPinned(type, props, configOf("images-pinned", args).requireDigest),
);

export const workloadResources = resourcePolicy(
  {
    name: "workload-resources",
    description: "Every container requests CPU and memory and has a memory limit.",
    enforcementLevel: advisory,
    severity: "medium",
  },
  WORKLOAD_TYPES,
  checkResources,
);

export const workloadNonRoot = resourcePolicy(
  {
    name: "workload-non-root",
    description: "Every container runs as a non-root user and unprivileged.",
    enforcementLevel: mandatory,
    severity: "high",
  },
  WORKLOAD_TYPES,
  checkNonRoot,
);

export const registrationStableUrl = resourcePolicy(
  {
    name: "registration-stable-url",
    description: "An ERC-8004 registration's agentURI is https and not on a quick tunnel.",
    enforcementLevel: mandatory,
    severity: "high",
  },
  [TYPES.agentRegistration],
  (_type, props) => checkAgentUri(props),
);

export const registrationNotOnQuickTunnel: StackValidationPolicy = stackPolicy(
  {
    name: "registration-not-on-quick-tunnel",
    description: "No ERC-8004 registration while the only public URL is a quick tunnel.",
    enforcementLevel: mandatory,
    severity: "high",
  },
  (resources) => checkRegistrationTunnel(resources, TYPES.agentRegistration),
);

export const k3dClusterName = resourcePolicy(
  {
    name: "k3d-cluster-name",
    description: "The k3d cluster name is a DNS label within k3d's 32-character limit.",
    enforcementLevel: mandatory,
    severity: "medium",
  },
  [TYPES.k3dCluster],
  (_type, props) => checkK3dName(props),
);

export const tunnelGatewayOnly = resourcePolicy(
  {
    name: "tunnel-gateway-only",
    description: "The tunnel's only origin is the x402 gateway Service.",
    enforcementLevel: mandatory,
    severity: "critical",
    configSchema: {
      properties: {
        gatewayService: {
          type: "string",
          default: CONFIG_DEFAULTS["tunnel-gateway-only"].gatewayService,
          description: "Name of the gateway's Service.",
        },
      },
    },
  },
  WORKLOAD_TYPES,
  (type, props, args) => checkTunnelOrigin(type, props, configOf("tunnel-gateway-only", args).gatewayService),
);

export const noExternalServices = resourcePolicy(
  {
    name: "no-external-services",
    description: "No Service of type LoadBalancer or NodePort: the tunnel is the only way in.",
    enforcementLevel: mandatory,
    severity: "critical",
  },
  [TYPES.service],
  (_type, props) => checkServiceType(props),
);

export const policies: Policies = [
  offerPayToChecksummed,
  offerPriceBounds,
  offerNetworkAllowlist,
  offerMainnetOptIn,
  offerPathNotReserved,
  offerRoutesUnique,
  noPlaintextSecrets,
  imagesPinned,
  workloadResources,
  workloadNonRoot,
  registrationStableUrl,
  registrationNotOnQuickTunnel,
  k3dClusterName,
  tunnelGatewayOnly,
  noExternalServices,
];
