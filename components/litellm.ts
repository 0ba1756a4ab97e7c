import * as crypto from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify as toYaml } from "yaml";
import { labelsFor, selectorFor } from "./labels";
import { httpProbe, podSpec, resources, startupProbe } from "./workload";

export const LITELLM_PORT = 4000;

export interface LiteLLMModel {
  /** The name callers send as `model`. */
  name: string;
  /** LiteLLM provider/model, e.g. `openai/gpt-4o-mini` or `ollama/llama3`. */
  model: string;
  apiBase?: string;
  /** Environment variable (from the Secret) holding this model's API key. */
  apiKeyEnv?: string;
}

export interface LiteLLMArgs {
  namespace: pulumi.Input<string>;
  image: string;
  models: LiteLLMModel[];
  masterKey: pulumi.Input<string>;
  /** Extra secret environment (model API keys), by variable name. */
  secretEnv: Record<string, pulumi.Input<string>>;
  /** OpenAI-compatible base URL of the buyer proxy, which the static `paid/*` route points at. */
  buyerBaseUrl: pulumi.Input<string>;
  /** Models bought by the stack's purchases: listed by /v1/models as `paid/<model>`. */
  paidModels?: string[];
}

/** Sent as the API key to upstreams configured without one: the OpenAI client LiteLLM uses
 * refuses to send a request without a key ("Missing credentials"), and keyless servers ignore it. */
export const KEYLESS_API_KEY = "unused-keyless-upstream";

/** LiteLLM's fixed environment: no download of the model price list at start (it ships one),
 * so the proxy starts the same way with or without egress. */
export const LITELLM_ENV = [
  { name: "HOME", value: "/tmp" },
  { name: "LITELLM_LOCAL_MODEL_COST_MAP", value: "True" },
];

/** The proxy's arguments after the image's `litellm` entrypoint. */
export function liteLLMArgs(configPath: string, port: number = LITELLM_PORT): string[] {
  return ["--config", configPath, "--port", String(port)];
}

/** A route to the buyer proxy. Each attempt may pay the seller, so LiteLLM must never retry a
 * paid call: its router retries 429/5xx answers (3 attempts by default) and the OpenAI client
 * has retries of its own. */
function paidRoute(modelName: string, params: Record<string, string>, buyerBaseUrl: string) {
  return {
    model_name: modelName,
    litellm_params: {
      ...params,
      api_base: buyerBaseUrl,
      api_key: "unused-the-buyer-pays-per-request",
      num_retries: 0,
      max_retries: 0,
    },
  };
}

/**
 * LiteLLM's config.yaml. Each purchased model gets a `paid/<model>` entry, so /v1/models lists
 * what was bought; the `paid/*` wildcard routes any other `paid/<model>` (e.g. a PurchaseRequest
 * created at run time) to the buyer proxy, which picks the PurchaseRequest for that model.
 */
export function liteLLMConfig(
  models: LiteLLMModel[],
  buyerBaseUrl: string,
  paidModels: string[] = [],
): string {
  const modelList = [
    ...models.map((m) => ({
      model_name: m.name,
      litellm_params: {
        model: m.model,
        ...(m.apiBase ? { api_base: m.apiBase } : {}),
        api_key: m.apiKeyEnv ? `os.environ/${m.apiKeyEnv}` : KEYLESS_API_KEY,
      },
    })),
    ...[...new Set(paidModels)]
      .sort()
      .map((m) => paidRoute(`paid/${m}`, { model: `openai/${m}` }, buyerBaseUrl)),
    // Not `model: openai/*`: for a provider-prefixed wildcard, /v1/models lists every model of
    // LiteLLM's price list for that provider (`paid/gpt-4o`, ... ~200 names nobody sells here).
    // A bare `*` with the provider given separately routes the same way and lists nothing.
    paidRoute("paid/*", { model: "*", custom_llm_provider: "openai" }, buyerBaseUrl),
  ];
  return toYaml({
    model_list: modelList,
    litellm_settings: { drop_params: true, telemetry: false },
    general_settings: { master_key: "os.environ/LITELLM_MASTER_KEY" },
  });
}

/** The LiteLLM proxy (official image): a static config, the master key in a Secret. */
export class LiteLLM extends pulumi.ComponentResource {
  readonly serviceName: pulumi.Output<string>;
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: LiteLLMArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:LiteLLM", name, {}, opts);
    const labels = labelsFor("litellm");
    // Children named from the component (components/naming.ts); the program's instance is
    // "litellm", the fixed name they had before, so its URNs are unchanged.
    const secret = new k8s.core.v1.Secret(
      name,
      {
        metadata: { namespace: args.namespace, name: "litellm-secrets", labels },
        stringData: { LITELLM_MASTER_KEY: args.masterKey, ...args.secretEnv },
      },
      { parent: this },
    );
    const configYaml = pulumi
      .output(args.buyerBaseUrl)
      .apply((url) => liteLLMConfig(args.models, url, args.paidModels ?? []));
    const config = new k8s.core.v1.ConfigMap(
      name,
      {
        metadata: { namespace: args.namespace, name: "litellm-config", labels },
        data: { "config.yaml": configYaml },
      },
      { parent: this },
    );
    const selector = selectorFor("litellm");
    new k8s.apps.v1.Deployment(
      name,
      {
        metadata: { namespace: args.namespace, name: "litellm", labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: selector },
          template: {
            metadata: {
              labels: { ...labels, ...selector },
              // LiteLLM reads its config once at start: roll the pod when the config changes.
              annotations: {
                "obol.org/config-hash": configYaml.apply((c) =>
                  crypto.createHash("sha256").update(c).digest("hex").slice(0, 16),
                ),
              },
            },
            spec: podSpec({
              container: {
                name: "litellm",
                image: args.image,
                args: liteLLMArgs("/etc/litellm/config.yaml"),
                ports: [{ name: "http", containerPort: LITELLM_PORT }],
                envFrom: [{ secretRef: { name: secret.metadata.name } }],
                env: LITELLM_ENV,
                startupProbe: startupProbe("/health/liveliness", "http"),
                livenessProbe: httpProbe("/health/liveliness", "http", 15),
                readinessProbe: httpProbe("/health/readiness", "http"),
                resources: resources({ cpu: "100m", memory: "512Mi", memoryLimit: "1Gi" }),
                volumeMounts: [
                  { name: "config", mountPath: "/etc/litellm", readOnly: true },
                  { name: "tmp", mountPath: "/tmp" },
                ],
              },
              volumes: [
                { name: "config", configMap: { name: config.metadata.name } },
                { name: "tmp", emptyDir: {} },
              ],
            }),
          },
        },
      },
      { parent: this },
    );
    const service = new k8s.core.v1.Service(
      name,
      {
        metadata: { namespace: args.namespace, name: "litellm", labels },
        spec: { selector, ports: [{ name: "http", port: LITELLM_PORT, targetPort: "http" }] },
      },
      { parent: this },
    );
    this.serviceName = service.metadata.name;
    this.url = pulumi.interpolate`http://${service.metadata.name}.${service.metadata.namespace}.svc:${LITELLM_PORT}`;
    this.registerOutputs({ serviceName: this.serviceName, url: this.url });
  }
}
