/**
 * The platform sections of stack config: cluster, namespace, images, litellm, facilitator,
 * tunnel and publicBaseUrl. Each validator reads its own section, adds its problems to `issues`
 * and returns the normalized value, or undefined when the section is unusable.
 */
import { z } from "zod";
import { CDP_FACILITATOR_URL } from "../../api/contract";
import { DNS_LABEL, DNS_NAME, httpUrl } from "./fields";
import { type Issues, wholeNumber } from "./issues";
import {
  type ClusterConfig,
  DEFAULT_FACILITATOR_URL,
  DEFAULT_IMAGES,
  type FacilitatorConfig,
  type GatewayConfig,
  K3D_MAX_NAME,
  K3D_PREFIX,
  type LiteLLMModelConfig,
  type MonitoringConfig,
  type ParseContext,
  type TunnelConfig,
} from "./types";

/** What a section validator needs besides its input. */
export interface SectionContext extends ParseContext {
  issues: Issues;
  /** Records that a secret key is needed, and reports it when it is missing. */
  requireSecret(key: string, why: string): void;
}

export const clusterSchema = z
  .strictObject({
    mode: z.enum(["k3d", "kubeconfig"]).default("k3d"),
    name: z.string().optional(),
    servers: wholeNumber(1, 3, "k3d server nodes").default(1),
    agents: wholeNumber(0, 8, "k3d agent nodes").default(0),
    k3sImage: z.string().optional(),
  })
  .default({ mode: "k3d", servers: 1, agents: 0 });

export function cluster(cfg: z.infer<typeof clusterSchema>, c: SectionContext): ClusterConfig {
  const name = cfg.name ?? `${K3D_PREFIX}${c.stack}`.toLowerCase();
  if (cfg.mode === "k3d") {
    if (!DNS_LABEL.test(name)) {
      c.issues.add("cluster.name", `"${name}" must be lowercase letters, digits and '-' (a DNS label)`);
    } else if (name.length > K3D_MAX_NAME) {
      c.issues.add(
        "cluster.name",
        `"${name}" is ${name.length} characters; k3d allows at most ${K3D_MAX_NAME}. Set a shorter cluster.name (the default is "${K3D_PREFIX}<stack>")`,
      );
    }
  } else {
    c.requireSecret("kubeconfig", "in kubeconfig mode (the cluster to deploy to)");
  }
  return {
    mode: cfg.mode,
    name,
    servers: cfg.servers,
    agents: cfg.agents,
    ...(cfg.k3sImage !== undefined ? { k3sImage: cfg.k3sImage } : {}),
  };
}

export function namespace(value: string, c: SectionContext): string {
  if (!DNS_LABEL.test(value) || value.length > 63) {
    c.issues.add("namespace", `"${value}" must be a DNS label of at most 63 characters`);
  }
  return value;
}

export const imagesSchema = z
  .strictObject({
    runtime: z.string().optional(),
    litellm: z.string().optional(),
    cloudflared: z.string().optional(),
  })
  .default({});

/** Images: pinned, never floating. */
export function images(
  cfg: z.infer<typeof imagesSchema>,
  clusterMode: ClusterConfig["mode"],
  c: SectionContext,
) {
  const chosen = {
    runtime: cfg.runtime || DEFAULT_IMAGES.runtime,
    litellm: cfg.litellm || DEFAULT_IMAGES.litellm,
    cloudflared: cfg.cloudflared || DEFAULT_IMAGES.cloudflared,
  };
  for (const [key, ref] of Object.entries(chosen)) {
    if (!/@sha256:[0-9a-f]{64}$/.test(ref) && (/:latest$/.test(ref) || !/:[^/]+$/.test(ref))) {
      c.issues.add(
        `images.${key}`,
        `"${ref}" is not pinned: use an exact tag (name:1.2.3) or a digest (name@sha256:...)`,
      );
    }
  }
  return { ...chosen, buildRuntime: clusterMode === "k3d" && !cfg.runtime };
}

export const litellmSchema = z
  .strictObject({
    models: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          model: z.string().min(1),
          apiBase: z.string().optional(),
          apiKeySecret: z.string().min(1).optional(),
        }),
      )
      .default([]),
  })
  .default({ models: [] });

/** Config keys a model's apiKeySecret may not take: they mean something else. */
export function litellm(
  cfg: z.infer<typeof litellmSchema>,
  reservedKeys: ReadonlySet<string>,
  c: SectionContext,
): { models: LiteLLMModelConfig[] } {
  const models = cfg.models.map((m, i): LiteLLMModelConfig => {
    const at = `litellm.models[${i}]`;
    if (m.name.startsWith("paid/")) {
      c.issues.add(
        `${at}.name`,
        `"${m.name}" is under paid/, which LiteLLM routes to the buyer proxy (purchases[]); choose another name`,
      );
    }
    if (m.apiBase !== undefined)
      httpUrl(m.apiBase, `${at}.apiBase`, c.issues, "the provider's http(s) API base URL");
    if (m.apiKeySecret !== undefined) {
      if (reservedKeys.has(m.apiKeySecret)) {
        c.issues.add(
          `${at}.apiKeySecret`,
          `"${m.apiKeySecret}" is a stack config key with its own meaning; name the API key's secret something else, e.g. openaiApiKey`,
        );
      } else if (!c.secretKeys.has(m.apiKeySecret)) {
        c.issues.add(
          `${at}.apiKeySecret`,
          `names "${m.apiKeySecret}", which is not set as a secret: run \`pulumi config set --secret ${m.apiKeySecret} <key>\``,
        );
      }
    }
    return {
      name: m.name,
      model: m.model,
      ...(m.apiBase !== undefined ? { apiBase: m.apiBase } : {}),
      ...(m.apiKeySecret !== undefined ? { apiKeySecret: m.apiKeySecret } : {}),
    };
  });
  return { models };
}

export const facilitatorSchema = z
  .strictObject({
    mode: z.enum(["hosted", "self"]).default("hosted"),
    url: z.string().optional(),
    rpcUrl: z.string().optional(),
  })
  .default({ mode: "hosted" });

export function facilitator(
  cfg: z.infer<typeof facilitatorSchema>,
  c: SectionContext,
): FacilitatorConfig | undefined {
  if (cfg.mode === "hosted") {
    if (cfg.rpcUrl !== undefined) {
      c.issues.add(
        "facilitator.rpcUrl",
        "only a self-run facilitator uses an RPC URL; set facilitator.mode to self or remove it",
      );
    }
    const cdp = c.secretKeys.has("cdpApiKeyId") || c.secretKeys.has("cdpApiKeySecret");
    const url = httpUrl(
      cfg.url ?? (cdp ? CDP_FACILITATOR_URL : DEFAULT_FACILITATOR_URL),
      "facilitator.url",
      c.issues,
      "an https:// URL",
      { localHttpOnly: true },
    );
    if (cdp) {
      // Coinbase's facilitator: each call carries a JWT signed with the CDP API key.
      c.requireSecret("cdpApiKeyId", "with cdpApiKeySecret, to sign calls to Coinbase's facilitator (CDP)");
      c.requireSecret("cdpApiKeySecret", "with cdpApiKeyId, to sign calls to Coinbase's facilitator (CDP)");
      // The signatures name CDP's host and paths (…/platform/v2/x402/verify): nowhere else takes them.
      if (url !== undefined && url.replace(/\/+$/, "") !== CDP_FACILITATOR_URL) {
        c.issues.add(
          "facilitator.url",
          `a CDP API key signs calls to ${CDP_FACILITATOR_URL} only (the signature names its host and paths); remove facilitator.url to use it, or remove cdpApiKeyId and cdpApiKeySecret`,
        );
      }
      if (c.secretKeys.has("facilitatorToken")) {
        c.issues.add(
          "facilitatorToken",
          "Coinbase's facilitator takes a CDP API key (cdpApiKeyId, cdpApiKeySecret), not a bearer token; remove one of them (`pulumi config rm facilitatorToken`)",
        );
      }
      return url === undefined ? undefined : { mode: "hosted", url: CDP_FACILITATOR_URL, auth: "cdp" };
    }
    // Optional: a hosted facilitator that requires a bearer token gets it on every call.
    if (c.secretKeys.has("facilitatorToken"))
      c.requireSecret("facilitatorToken", "to authenticate to the hosted facilitator");
    return url === undefined ? undefined : { mode: "hosted", url };
  }
  c.requireSecret("facilitatorSignerKey", "when facilitator.mode is self (the key that submits settlements)");
  for (const key of ["cdpApiKeyId", "cdpApiKeySecret"])
    if (c.secretKeys.has(key))
      c.issues.add(
        key,
        `a CDP API key is for Coinbase's hosted facilitator; remove it (\`pulumi config rm ${key}\`), or set facilitator.mode to hosted`,
      );
  if (c.secretKeys.has("facilitatorToken")) {
    c.issues.add(
      "facilitatorToken",
      "a self-run facilitator's access token is generated by the stack and given to its gateway; remove it (`pulumi config rm facilitatorToken`), or set facilitator.mode to hosted",
    );
  }
  if (cfg.url !== undefined) {
    c.issues.add(
      "facilitator.url",
      "a self-run facilitator's URL is its in-cluster Service; remove facilitator.url, or set facilitator.mode to hosted",
    );
  }
  // There is no RPC endpoint that suits every chain and every user: without one the facilitator
  // cannot settle anything, so it is required rather than defaulted.
  if (cfg.rpcUrl === undefined) {
    c.issues.add(
      "facilitator.rpcUrl",
      "required when facilitator.mode is self: the JSON-RPC URL of the chain your offers are paid on, e.g. https://sepolia.base.org",
    );
    return undefined;
  }
  const rpcUrl = httpUrl(cfg.rpcUrl, "facilitator.rpcUrl", c.issues, "an http(s) JSON-RPC URL");
  return rpcUrl === undefined ? undefined : { mode: "self", rpcUrl };
}

export const tunnelSchema = z
  .strictObject({
    mode: z.enum(["none", "quick", "named"]).default("quick"),
    hostname: z.string().optional(),
  })
  .default({ mode: "quick" });

export function tunnel(cfg: z.infer<typeof tunnelSchema>, c: SectionContext): TunnelConfig | undefined {
  if (cfg.mode !== "named") {
    if (cfg.hostname) {
      c.issues.add(
        "tunnel.hostname",
        `only a named tunnel has a fixed hostname; set tunnel.mode to "named" or remove it`,
      );
    }
    return { mode: cfg.mode };
  }
  c.requireSecret("tunnelToken", "for a named tunnel (from the Cloudflare dashboard)");
  if (!cfg.hostname || !DNS_NAME.test(cfg.hostname)) {
    c.issues.add("tunnel.hostname", "a named tunnel needs its public hostname, e.g. api.example.com");
    return undefined;
  }
  return { mode: "named", hostname: cfg.hostname };
}

/** The stable public origin: explicit, else a named tunnel's hostname. */
export function publicBaseUrl(
  input: string | undefined,
  tunnelCfg: TunnelConfig | undefined,
  c: SectionContext,
): string | undefined {
  if (input !== undefined) {
    const origin = input.replace(/\/+$/, "");
    if (!/^https?:\/\/[a-zA-Z0-9.-]+(:\d+)?$/.test(origin) || !URL.canParse(origin)) {
      c.issues.add("publicBaseUrl", `"${input}" must be an origin such as https://api.example.com (no path)`);
      return undefined;
    }
    return origin;
  }
  return tunnelCfg?.mode === "named" ? `https://${tunnelCfg.hostname}` : undefined;
}

export const gatewaySchema = z
  .strictObject({
    replicas: wholeNumber(
      1,
      undefined,
      "gateway pods; 2 or more keep offers up through a node drain or a crashed pod (docs/adr/0003-ha-gateway.md)",
    ).default(1),
  })
  .default({ replicas: 1 });

export function gateway(cfg: z.infer<typeof gatewaySchema>): GatewayConfig {
  return { replicas: cfg.replicas };
}

/** `true`/`false` also as strings: `pulumi config set --path` may store either. */
export const monitoringSchema = z
  .strictObject({
    serviceMonitors: z
      .union([z.boolean(), z.enum(["auto", "true", "false"])], {
        error: 'must be "auto", true or false: whether to create the Prometheus Operator objects',
      })
      .default("auto"),
  })
  .default({ serviceMonitors: "auto" });

/**
 * Whether to create ServiceMonitor/PodMonitor, PrometheusRule and the dashboard ConfigMap.
 * Default `auto`: created when the cluster serves the monitoring.coreos.com CRDs (asked at every
 * preview and update, program/monitoring.ts), so a cluster with kube-prometheus-stack is scraped
 * without configuration and one without it is left alone.
 */
export function monitoring(cfg: z.infer<typeof monitoringSchema>): MonitoringConfig {
  const v = cfg.serviceMonitors;
  return { serviceMonitors: v === "auto" ? "auto" : v === true || v === "true" };
}
