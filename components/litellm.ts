import * as crypto from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify as toYaml } from "yaml";
import { labelsFor, selectorFor } from "./labels";
import { httpProbe, podSpec, resources } from "./workload";

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
}

/**
 * LiteLLM's config.yaml. The `paid/*` wildcard sends any `paid/<model>` to the buyer proxy,
 * which picks the PurchaseRequest for that model: buying a new model never edits this file.
 */
export function liteLLMConfig(models: LiteLLMModel[], buyerBaseUrl: string): string {
  const modelList = [
    ...models.map((m) => ({
      model_name: m.name,
      litellm_params: {
        model: m.model,
        ...(m.apiBase ? { api_base: m.apiBase } : {}),
        ...(m.apiKeyEnv ? { api_key: `os.environ/${m.apiKeyEnv}` } : {}),
      },
    })),
    {
      model_name: "paid/*",
      litellm_params: {
        model: "openai/*",
        api_base: buyerBaseUrl,
        api_key: "unused-the-buyer-pays-per-request",
      },
    },
  ];
  return toYaml({
    model_list: modelList,
    litellm_settings: { drop_params: true },
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
    const secret = new k8s.core.v1.Secret(
      "litellm",
      {
        metadata: { namespace: args.namespace, name: "litellm-secrets", labels },
        stringData: { LITELLM_MASTER_KEY: args.masterKey, ...args.secretEnv },
      },
      { parent: this },
    );
    const configYaml = pulumi.output(args.buyerBaseUrl).apply((url) => liteLLMConfig(args.models, url));
    const config = new k8s.core.v1.ConfigMap(
      "litellm",
      {
        metadata: { namespace: args.namespace, name: "litellm-config", labels },
        data: { "config.yaml": configYaml },
      },
      { parent: this },
    );
    const selector = selectorFor("litellm");
    new k8s.apps.v1.Deployment(
      "litellm",
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
                args: ["--config", "/etc/litellm/config.yaml", "--port", String(LITELLM_PORT)],
                ports: [{ name: "http", containerPort: LITELLM_PORT }],
                envFrom: [{ secretRef: { name: secret.metadata.name } }],
                env: [{ name: "HOME", value: "/tmp" }],
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
      "litellm",
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
