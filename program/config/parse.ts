/**
 * Stack config (Pulumi.<stack>.yaml): its schema, and its conversion into the stored forms of
 * api/resources.ts. Every problem is reported at once, each naming the config path and the fix,
 * before any resource is declared.
 *
 * Secrets live in their own top-level keys (SECRET_KEYS) and must be set with `--secret`;
 * everything else is plain, reviewable config.
 */
import { getAddress, isAddress, zeroAddress } from "viem";
import { z } from "zod";
import { chainInfo, toCaip2, UnknownChainError } from "../../api/chains";
import { isReservedPath, RESERVED_PATHS } from "../../api/contract";
import { isDecimalString, PriceError, toAtomic } from "../../api/money";
import type { Asset, Payment, ServiceOfferSpec } from "../../api/resources";

/** Config keys that hold secrets; they must be set with `pulumi config set --secret`. */
export const SECRET_KEYS = [
  "kubeconfig",
  "litellmMasterKey",
  "facilitatorSignerKey",
  "tunnelToken",
  "identitySignerKey",
  "buyerSignerKey",
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

export interface ConfigIssue {
  /** Config path, e.g. `offers[1].payment.payTo`. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(
      `invalid stack config (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n${issues
        .map((i) => `  - ${i.path}: ${i.message}`)
        .join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

// ---- raw shapes (what a user writes) --------------------------------------------------------

const amount = z.union([z.string(), z.number()]);
const rawAsset = z.strictObject({
  address: z.string(),
  symbol: z.string().default("USDC"),
  decimals: z.number().int().min(0).max(36).default(6),
  transferMethod: z.enum(["eip3009", "permit2"]).default("eip3009"),
  eip712Name: z.string().optional(),
  eip712Version: z.string().default("2"),
  eip2612: z.boolean().optional(),
});
const rawPayment = z.strictObject({
  network: z.string(),
  payTo: z.string(),
  asset: rawAsset.optional(),
  price: z.strictObject({ perRequest: amount.optional(), perMTok: amount.optional() }),
  maxTimeoutSeconds: z.number().int().min(10).max(86_400).default(300),
});
const rawOffer = z.strictObject({
  name: z.string(),
  type: z.enum(["inference", "http"]).default("http"),
  description: z.string().max(1024).optional(),
  model: z.strictObject({ name: z.string().min(1), runtime: z.string().optional() }).optional(),
  upstream: z.strictObject({
    service: z.string().optional(),
    namespace: z.string().optional(),
    port: z.number().int().min(1).max(65_535).optional(),
    url: z.string().optional(),
    healthPath: z.string().default("/health"),
  }),
  payment: rawPayment,
  payments: z.array(rawPayment).max(8).optional(),
  path: z.string().optional(),
  hostname: z.string().optional(),
  routes: z
    .array(
      z.strictObject({
        path: z.string(),
        gate: z.enum(["paid", "free"]).default("paid"),
        methods: z.array(z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])).optional(),
      }),
    )
    .optional(),
  limits: z
    .strictObject({
      rps: z.number().int().min(0).optional(),
      maxInFlight: z.number().int().min(0).optional(),
    })
    .optional(),
  listing: z
    .strictObject({ category: z.string().optional(), weight: z.number().int().optional() })
    .optional(),
});
const rawPurchase = z.strictObject({
  name: z.string(),
  endpoint: z.string(),
  model: z.string().min(1),
  payment: z.strictObject({
    network: z.string(),
    asset: z.string().optional(),
    decimals: z.number().int().min(0).max(36).optional(),
    maxPrice: amount,
    rpcUrl: z.string().optional(),
  }),
  budget: z.strictObject({
    maxPerRequest: amount,
    maxPerDay: amount.optional(),
    maxTotal: amount.optional(),
  }),
});

const rawConfig = z.strictObject({
  cluster: z
    .strictObject({
      mode: z.enum(["k3d", "kubeconfig"]).default("k3d"),
      name: z.string().optional(),
      servers: z.number().int().min(1).max(3).default(1),
      agents: z.number().int().min(0).max(8).default(0),
      k3sImage: z.string().optional(),
    })
    .default({ mode: "k3d", servers: 1, agents: 0 }),
  namespace: z.string().default("obol"),
  images: z
    .strictObject({
      runtime: z.string().optional(),
      litellm: z.string().optional(),
      cloudflared: z.string().optional(),
    })
    .default({}),
  litellm: z
    .strictObject({
      models: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            model: z.string().min(1),
            apiBase: z.string().optional(),
            apiKeySecret: z.string().optional(),
          }),
        )
        .default([]),
    })
    .default({ models: [] }),
  facilitator: z
    .strictObject({
      mode: z.enum(["hosted", "self"]).default("hosted"),
      url: z.string().optional(),
      rpcUrl: z.string().optional(),
    })
    .default({ mode: "hosted" }),
  tunnel: z
    .strictObject({
      mode: z.enum(["none", "quick", "named"]).default("quick"),
      hostname: z.string().optional(),
    })
    .default({ mode: "quick" }),
  publicBaseUrl: z.string().optional(),
  identity: z
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
    }),
  offers: z.array(rawOffer).default([]),
  purchases: z.array(rawPurchase).default([]),
  // Secret keys are read separately; listed so the strict schema accepts them.
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, z.string().optional()])),
});

// ---- normalized shapes (what the program declares) -----------------------------------------

export interface OfferConfig {
  name: string;
  spec: ServiceOfferSpec;
}

export interface PurchaseConfig {
  name: string;
  endpoint: string;
  model: string;
  payment: {
    network: `eip155:${number}`;
    asset?: string;
    decimals: number;
    maxPrice: string;
    rpcUrl?: string;
  };
  budget: { maxPerRequest: string; maxPerDay?: string; maxTotal?: string };
}

export interface StackConfig {
  cluster: { mode: "k3d" | "kubeconfig"; name: string; servers: number; agents: number; k3sImage?: string };
  namespace: string;
  /** `buildRuntime`: build the runtime image locally and import it into k3d (k3d mode, no images.runtime). */
  images: { runtime: string; litellm: string; cloudflared: string; buildRuntime: boolean };
  litellm: { models: { name: string; model: string; apiBase?: string; apiKeySecret?: string }[] };
  facilitator: { mode: "hosted" | "self"; url?: string; rpcUrl?: string };
  tunnel: { mode: "none" | "quick" | "named"; hostname?: string };
  /** The stable public origin, when one is known (explicit, or a named tunnel's hostname). */
  publicBaseUrl?: string;
  identity: {
    register: boolean;
    name: string;
    description: string;
    image?: string;
    /** One entry per chain used by offers (CAIP-2), with its RPC URL and registry. */
    chains: { network: `eip155:${number}`; rpcUrl: string; registry: `0x${string}`; adoptAgentId?: string }[];
  };
  offers: OfferConfig[];
  purchases: PurchaseConfig[];
  /** Secret keys this stack needs, each of which is present and stored as a secret. */
  secrets: SecretKey[];
}

export interface ParseContext {
  stack: string;
  /** Keys (without project prefix) that Pulumi stores encrypted. */
  secretKeys: ReadonlySet<string>;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const OFFER_PATH = /^\/([a-zA-Z0-9_.~-]+(\/[a-zA-Z0-9_.~-]+)*)?$/;

function formatPath(path: PropertyKey[]): string {
  return path.reduce<string>((acc, part) => {
    if (typeof part === "number") return `${acc}[${part}]`;
    return acc ? `${acc}.${String(part)}` : String(part);
  }, "");
}

function zodMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}: check the spelling against the README's config reference`;
  }
  if (issue.code === "invalid_value") {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (issue.code === "invalid_type") {
    return `expected ${issue.expected}${issue.input === undefined ? " (the field is required)" : `, got ${typeof issue.input}`}`;
  }
  return issue.message;
}

/** Parses stack config; throws ConfigError listing every problem. Pure: no I/O. */
export function parseStackConfig(raw: Record<string, unknown>, ctx: ParseContext): StackConfig {
  const parsed = rawConfig.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: zodMessage(i) })),
    );
  }
  const cfg = parsed.data;
  const issues: ConfigIssue[] = [];
  const issue = (path: string, message: string) => issues.push({ path, message });

  // Secrets: present where needed, and never in plaintext.
  const needed = new Set<SecretKey>();
  const requireSecret = (key: SecretKey, why: string) => {
    needed.add(key);
    if (raw[key] === undefined) {
      issue(key, `required ${why}: run \`pulumi config set --secret ${key} <value>\``);
    }
  };
  for (const key of SECRET_KEYS) {
    if (raw[key] !== undefined && !ctx.secretKeys.has(key)) {
      issue(
        key,
        `is stored in plaintext in Pulumi.${ctx.stack}.yaml; it is a secret: remove it and run \`pulumi config set --secret ${key} <value>\``,
      );
    }
  }

  // Cluster.
  const clusterName = cfg.cluster.name ?? `${K3D_PREFIX}${ctx.stack}`.toLowerCase();
  if (cfg.cluster.mode === "k3d") {
    if (!DNS_LABEL.test(clusterName)) {
      issue("cluster.name", `"${clusterName}" must be lowercase letters, digits and '-' (a DNS label)`);
    } else if (clusterName.length > K3D_MAX_NAME) {
      issue(
        "cluster.name",
        `"${clusterName}" is ${clusterName.length} characters; k3d allows at most ${K3D_MAX_NAME}. Set a shorter cluster.name (the default is "${K3D_PREFIX}<stack>")`,
      );
    }
  } else {
    requireSecret("kubeconfig", "in kubeconfig mode (the cluster to deploy to)");
  }
  if (!DNS_LABEL.test(cfg.namespace) || cfg.namespace.length > 63) {
    issue("namespace", `"${cfg.namespace}" must be a DNS label of at most 63 characters`);
  }

  // Images: pinned, never floating.
  const images = {
    ...DEFAULT_IMAGES,
    ...Object.fromEntries(Object.entries(cfg.images).filter(([, v]) => v)),
  };
  for (const [key, ref] of Object.entries(images)) {
    if (!/@sha256:[0-9a-f]{64}$/.test(ref) && (/:latest$/.test(ref) || !/:[^/]+$/.test(ref))) {
      issue(
        `images.${key}`,
        `"${ref}" is not pinned: use an exact tag (name:1.2.3) or a digest (name@sha256:...)`,
      );
    }
  }

  // LiteLLM keys referenced by models must exist as secret config.
  cfg.litellm.models.forEach((m, i) => {
    if (m.apiKeySecret && !ctx.secretKeys.has(m.apiKeySecret)) {
      issue(
        `litellm.models[${i}].apiKeySecret`,
        `names "${m.apiKeySecret}", which is not set as a secret: run \`pulumi config set --secret ${m.apiKeySecret} <key>\``,
      );
    }
  });

  // Facilitator.
  if (cfg.facilitator.mode === "hosted") {
    const url = cfg.facilitator.url ?? "https://x402.org/facilitator";
    if (!/^https:\/\/[^\s]+$/.test(url) && !/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/.test(url)) {
      issue("facilitator.url", `"${url}" must be an https:// URL (http is allowed only for localhost)`);
    }
    cfg.facilitator.url = url;
  } else {
    requireSecret("facilitatorSignerKey", "when facilitator.mode is self (the key that submits settlements)");
  }

  // Tunnel and public URL.
  let publicBaseUrl = cfg.publicBaseUrl?.replace(/\/+$/, "");
  if (publicBaseUrl !== undefined && !/^https?:\/\/[a-zA-Z0-9.-]+(:\d+)?$/.test(publicBaseUrl)) {
    issue(
      "publicBaseUrl",
      `"${cfg.publicBaseUrl}" must be an origin such as https://api.example.com (no path)`,
    );
  }
  if (cfg.tunnel.mode === "named") {
    requireSecret("tunnelToken", "for a named tunnel (from the Cloudflare dashboard)");
    if (!cfg.tunnel.hostname || !DNS_NAME.test(cfg.tunnel.hostname)) {
      issue("tunnel.hostname", "a named tunnel needs its public hostname, e.g. api.example.com");
    } else {
      publicBaseUrl ??= `https://${cfg.tunnel.hostname}`;
    }
  } else if (cfg.tunnel.hostname) {
    issue(
      "tunnel.hostname",
      `only a named tunnel has a fixed hostname; set tunnel.mode to "named" or remove it`,
    );
  }

  // Offers.
  const offers: OfferConfig[] = [];
  const names = new Map<string, number>();
  const paths = new Map<string, number>();
  const hostnames = new Map<string, number>();
  const networks = new Set<`eip155:${number}`>();
  cfg.offers.forEach((o, i) => {
    const at = `offers[${i}]`;
    if (!DNS_LABEL.test(o.name) || o.name.length > 52) {
      issue(
        `${at}.name`,
        `"${o.name}" must be a DNS label of at most 52 characters (lowercase letters, digits, '-')`,
      );
    }
    if (names.has(o.name))
      issue(
        `${at}.name`,
        `"${o.name}" is already used by offers[${names.get(o.name)}]; offer names must be unique`,
      );
    names.set(o.name, i);

    const path = (o.path ?? `/services/${o.name}`).replace(/\/+$/, "") || "/";
    if (!OFFER_PATH.test(path)) {
      issue(
        `${at}.path`,
        `"${o.path}" must be an absolute path of letters, digits and -_.~ segments, e.g. /services/${o.name}`,
      );
    } else if (isReservedPath(path)) {
      issue(
        `${at}.path`,
        `"${path}" is reserved for the gateway's own pages (${RESERVED_PATHS.join(", ")}); choose a path such as /services/${o.name}`,
      );
    }
    const clash = [...paths.entries()].find(
      ([p]) => p === path || path.startsWith(`${p}/`) || p.startsWith(`${path}/`),
    );
    if (clash)
      issue(
        `${at}.path`,
        `"${path}" overlaps "${clash[0]}" of offers[${clash[1]}]; give each offer its own path`,
      );
    paths.set(path, i);
    if (o.hostname !== undefined) {
      if (!DNS_NAME.test(o.hostname)) issue(`${at}.hostname`, `"${o.hostname}" is not a DNS name`);
      if (hostnames.has(o.hostname))
        issue(`${at}.hostname`, `"${o.hostname}" is already used by offers[${hostnames.get(o.hostname)}]`);
      hostnames.set(o.hostname, i);
    }

    const up = o.upstream;
    if (!!up.url === !!up.service) {
      issue(`${at}.upstream`, "set exactly one of upstream.service (a Kubernetes Service) or upstream.url");
    }
    if (up.url && !/^https?:\/\/[^\s]+$/.test(up.url))
      issue(`${at}.upstream.url`, `"${up.url}" must be an http(s) URL`);
    if (up.service && !DNS_LABEL.test(up.service))
      issue(`${at}.upstream.service`, `"${up.service}" is not a Service name`);
    if (up.service && up.port === undefined)
      issue(`${at}.upstream.port`, "required with upstream.service (the Service port)");
    if (!up.healthPath.startsWith("/"))
      issue(`${at}.upstream.healthPath`, `"${up.healthPath}" must start with /`);
    if (o.type === "inference" && !o.model)
      issue(`${at}.model`, "an inference offer needs model.name (the model buyers ask for)");

    const payments = [o.payment, ...(o.payments ?? [])].map((p, j) =>
      normalizePayment(p, j === 0 ? `${at}.payment` : `${at}.payments[${j - 1}]`, issue),
    );
    for (const p of payments) if (p) networks.add(p.network as `eip155:${number}`);
    const [primary, ...extra] = payments;
    if (primary && extra.every((p): p is Payment => p !== undefined)) {
      offers.push({
        name: o.name,
        spec: {
          type: o.type,
          ...(o.description ? { description: o.description } : {}),
          ...(o.model ? { model: o.model } : {}),
          upstream: { ...up, ...(up.service ? { namespace: up.namespace ?? cfg.namespace } : {}) },
          payment: primary,
          ...(extra.length > 0 ? { payments: extra } : {}),
          path,
          ...(o.hostname ? { hostname: o.hostname } : {}),
          ...(o.routes ? { routes: o.routes } : {}),
          ...(o.limits ? { limits: o.limits } : {}),
          ...(o.listing ? { listing: o.listing } : {}),
        },
      });
    }
  });

  // Purchases.
  const purchases: PurchaseConfig[] = [];
  const purchaseNames = new Set<string>();
  cfg.purchases.forEach((p, i) => {
    const at = `purchases[${i}]`;
    if (!DNS_LABEL.test(p.name)) issue(`${at}.name`, `"${p.name}" must be a DNS label`);
    if (purchaseNames.has(p.name))
      issue(`${at}.name`, `"${p.name}" is used twice; purchase names must be unique`);
    purchaseNames.add(p.name);
    if (!/^https?:\/\/[^\s]+$/.test(p.endpoint))
      issue(`${at}.endpoint`, `"${p.endpoint}" must be the seller's http(s) URL`);
    const network = normalizeNetwork(p.payment.network, `${at}.payment.network`, issue);
    const maxPrice = normalizeAmount(p.payment.maxPrice, `${at}.payment.maxPrice`, issue);
    const maxPerRequest = normalizeAmount(p.budget.maxPerRequest, `${at}.budget.maxPerRequest`, issue);
    const maxPerDay =
      p.budget.maxPerDay === undefined
        ? undefined
        : normalizeAmount(p.budget.maxPerDay, `${at}.budget.maxPerDay`, issue);
    const maxTotal =
      p.budget.maxTotal === undefined
        ? undefined
        : normalizeAmount(p.budget.maxTotal, `${at}.budget.maxTotal`, issue);
    if (p.payment.rpcUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(p.payment.rpcUrl))
      issue(
        `${at}.payment.rpcUrl`,
        `"${p.payment.rpcUrl}" must be an http(s) JSON-RPC URL of ${p.payment.network}`,
      );
    if (p.payment.asset !== undefined && !isAddress(p.payment.asset, { strict: false })) {
      issue(`${at}.payment.asset`, `"${p.payment.asset}" is not an address`);
    }
    // Budgets are in token units: the token's decimals must be known to count them exactly.
    const usdc = network ? chainInfo(network)?.usdc : undefined;
    const isUsdc = !p.payment.asset || (usdc && p.payment.asset.toLowerCase() === usdc.address.toLowerCase());
    const decimals = p.payment.decimals ?? (isUsdc ? usdc?.decimals : undefined);
    if (network && decimals === undefined) {
      issue(
        `${at}.payment.decimals`,
        "required when the asset is not the chain's USDC (the token's decimals, e.g. 18)",
      );
    }
    if (network && maxPrice && maxPerRequest && decimals !== undefined) {
      purchases.push({
        name: p.name,
        endpoint: p.endpoint,
        model: p.model,
        payment: {
          network,
          decimals,
          maxPrice,
          ...(p.payment.rpcUrl ? { rpcUrl: p.payment.rpcUrl } : {}),
          ...(p.payment.asset && isAddress(p.payment.asset, { strict: false })
            ? { asset: getAddress(p.payment.asset) }
            : {}),
        },
        budget: { maxPerRequest, ...(maxPerDay ? { maxPerDay } : {}), ...(maxTotal ? { maxTotal } : {}) },
      });
    }
  });
  if (cfg.purchases.length > 0) requireSecret("buyerSignerKey", "to pay sellers for purchases");

  // Identity: one registration per chain used by offers; needs a stable URL.
  const chains: StackConfig["identity"]["chains"] = [];
  if (cfg.identity.register) {
    requireSecret("identitySignerKey", "when identity.register is true (the key that owns the agent NFT)");
    if (!publicBaseUrl) {
      issue(
        "identity.register",
        cfg.tunnel.mode === "quick"
          ? "quick-tunnel URLs change on every restart, so the on-chain agentURI would go stale: use tunnel.mode named, or set publicBaseUrl"
          : "registration needs a stable public URL: set publicBaseUrl or use a named tunnel",
      );
    }
    if (networks.size === 0) issue("identity.register", "no offer declares a network to register on");
    for (const network of networks) {
      const rpcUrl = lookup(cfg.identity.rpcUrls, network);
      const registry = lookup(cfg.identity.registries, network) ?? chainInfo(network)?.identityRegistry;
      if (!rpcUrl) issue(`identity.rpcUrls`, `no RPC URL for ${network}: add identity.rpcUrls["${network}"]`);
      if (!registry)
        issue(
          `identity.registries`,
          `no IdentityRegistry known for ${network}: add identity.registries["${network}"]`,
        );
      else if (!isAddress(registry, { strict: false }))
        issue(`identity.registries`, `"${registry}" for ${network} is not an address`);
      const adopt = lookup(cfg.identity.agentIds, network);
      if (adopt !== undefined && !/^[0-9]+$/.test(String(adopt)))
        issue("identity.agentIds", `agentId for ${network} must be a non-negative integer`);
      if (rpcUrl && registry && isAddress(registry, { strict: false })) {
        chains.push({
          network,
          rpcUrl,
          registry: getAddress(registry),
          ...(adopt !== undefined ? { adoptAgentId: String(adopt) } : {}),
        });
      }
    }
  }

  if (issues.length > 0) throw new ConfigError(issues);
  return {
    cluster: {
      mode: cfg.cluster.mode,
      name: clusterName,
      servers: cfg.cluster.servers,
      agents: cfg.cluster.agents,
      ...(cfg.cluster.k3sImage !== undefined ? { k3sImage: cfg.cluster.k3sImage } : {}),
    },
    namespace: cfg.namespace,
    images: { ...images, buildRuntime: cfg.cluster.mode === "k3d" && !cfg.images.runtime },
    litellm: {
      models: cfg.litellm.models.map(({ apiBase, apiKeySecret, ...m }) => ({
        ...m,
        ...(apiBase !== undefined ? { apiBase } : {}),
        ...(apiKeySecret !== undefined ? { apiKeySecret } : {}),
      })),
    },
    facilitator: {
      mode: cfg.facilitator.mode,
      ...(cfg.facilitator.url !== undefined ? { url: cfg.facilitator.url } : {}),
      ...(cfg.facilitator.rpcUrl !== undefined ? { rpcUrl: cfg.facilitator.rpcUrl } : {}),
    },
    tunnel: {
      mode: cfg.tunnel.mode,
      ...(cfg.tunnel.hostname !== undefined ? { hostname: cfg.tunnel.hostname } : {}),
    },
    ...(publicBaseUrl ? { publicBaseUrl } : {}),
    identity: {
      register: cfg.identity.register,
      name: cfg.identity.name,
      description: cfg.identity.description,
      ...(cfg.identity.image !== undefined ? { image: cfg.identity.image } : {}),
      chains,
    },
    offers,
    purchases,
    secrets: [...needed],
  };
}

/** Looks a chain-keyed map up by CAIP-2 or legacy name. */
function lookup<T>(map: Record<string, T>, network: `eip155:${number}`): T | undefined {
  for (const [key, value] of Object.entries(map)) {
    try {
      if (toCaip2(key) === network) return value;
    } catch {
      // an unknown key is simply not this chain
    }
  }
  return undefined;
}

type IssueFn = (path: string, message: string) => void;

function normalizeNetwork(input: string, at: string, issue: IssueFn): `eip155:${number}` | undefined {
  try {
    return toCaip2(input);
  } catch (err) {
    issue(at, err instanceof UnknownChainError ? err.message : String(err));
    return undefined;
  }
}

function normalizeAmount(
  input: string | number,
  at: string,
  issue: IssueFn,
  decimals?: number,
): string | undefined {
  if (typeof input === "number") {
    issue(
      at,
      `write amounts as quoted strings ("${input}") so they are exact; with --path use --type string`,
    );
    return undefined;
  }
  if (!isDecimalString(input)) {
    issue(at, `"${input}" is not a positive decimal amount; write it like "0.001"`);
    return undefined;
  }
  if (/^0(\.0*)?$/.test(input)) {
    issue(at, `must be greater than 0 (got "${input}"); to give something away, use a free route instead`);
    return undefined;
  }
  if (decimals !== undefined) {
    try {
      toAtomic(input, decimals);
    } catch (err) {
      issue(at, err instanceof PriceError ? err.message : String(err));
      return undefined;
    }
  }
  return input;
}

function normalizePayment(p: z.infer<typeof rawPayment>, at: string, issue: IssueFn): Payment | undefined {
  const network = normalizeNetwork(p.network, `${at}.network`, issue);
  let payTo: `0x${string}` | undefined;
  if (!isAddress(p.payTo, { strict: false })) {
    issue(`${at}.payTo`, `"${p.payTo}" is not an address: use 0x followed by 40 hex digits`);
  } else if (getAddress(p.payTo) === zeroAddress) {
    issue(
      `${at}.payTo`,
      "is the zero address; payments sent there are burned. Use the wallet that should receive them",
    );
  } else if (p.payTo !== p.payTo.toLowerCase() && p.payTo !== getAddress(p.payTo)) {
    issue(
      `${at}.payTo`,
      `"${p.payTo}" has a bad EIP-55 checksum (a typo?); the checksummed form of what you wrote is ${getAddress(p.payTo)}`,
    );
  } else {
    payTo = getAddress(p.payTo);
  }

  let asset: Asset | undefined;
  if (p.asset) {
    if (!isAddress(p.asset.address, { strict: false })) {
      issue(`${at}.asset.address`, `"${p.asset.address}" is not an address`);
    } else if (!p.asset.eip712Name && p.asset.transferMethod === "eip3009") {
      issue(
        `${at}.asset.eip712Name`,
        "required with a custom EIP-3009 asset: the token's EIP-712 domain name (its name() for most tokens); or set transferMethod: permit2 for a plain ERC-20",
      );
    } else {
      // Permit2 signatures use Permit2's own domain: the token's name is informational only.
      const eip712Name = p.asset.eip712Name ?? p.asset.symbol;
      asset = { ...p.asset, address: getAddress(p.asset.address), eip712Name };
    }
  } else if (network) {
    const usdc = chainInfo(network)?.usdc;
    if (usdc) asset = { ...usdc };
    else
      issue(
        `${at}.asset`,
        `${network} has no default token: set asset.address, asset.decimals and asset.eip712Name`,
      );
  }

  const { perRequest, perMTok } = p.price;
  if ((perRequest === undefined) === (perMTok === undefined)) {
    issue(`${at}.price`, "set exactly one of price.perRequest or price.perMTok");
  }
  const price: Payment["price"] = {};
  let priceOk = true;
  for (const [key, value] of [
    ["perRequest", perRequest],
    ["perMTok", perMTok],
  ] as const) {
    if (value === undefined) continue;
    const normalized = normalizeAmount(value, `${at}.price.${key}`, issue, asset?.decimals);
    if (normalized) price[key] = normalized;
    else priceOk = false;
  }

  if (!network || !payTo || !asset || !priceOk || (perRequest === undefined) === (perMTok === undefined))
    return undefined;
  return { scheme: "exact", network, payTo, asset, price, maxTimeoutSeconds: p.maxTimeoutSeconds };
}
