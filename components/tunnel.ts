import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, PORTS } from "../api/contract";
import { labelsFor, selectorFor } from "./labels";
import { httpProbe, podSpec, resources, startupProbe } from "./workload";

const TUNNEL_METRICS_PORT = PORTS.tunnelMetrics;

export interface TunnelArgs {
  mode: "none" | "quick" | "named";
  namespace: pulumi.Input<string>;
  image: string;
  /** The only thing the tunnel exposes: the gateway's in-cluster URL. */
  gatewayUrl: pulumi.Input<string>;
  /** Named mode: the public hostname configured for the tunnel in Cloudflare. */
  hostname?: string;
  /** Named mode: the tunnel token (a secret). */
  token?: pulumi.Input<string>;
}

/** Where the controller reads a quick tunnel's URL (the cloudflared-metrics Service below). */
export function quickTunnelMetricsUrl(namespace: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.interpolate`http://cloudflared-metrics.${namespace}.svc:${TUNNEL_METRICS_PORT}`;
}

/** cloudflared args for each mode; the gateway is the single origin. */
export function cloudflaredArgs(mode: "quick" | "named", gatewayUrl: string): string[] {
  const common = ["tunnel", "--no-autoupdate", "--metrics", `0.0.0.0:${TUNNEL_METRICS_PORT}`];
  return mode === "quick" ? [...common, "--url", gatewayUrl] : [...common, "run", "--url", gatewayUrl];
}

/**
 * A public URL for the gateway: none (local only), a quick tunnel (random, rotating URL
 * reported by cloudflared at run time) or a named tunnel (stable hostname, token in a Secret).
 */
export class Tunnel extends pulumi.ComponentResource {
  /** The stable public URL, when there is one (named mode). */
  readonly publicUrl: pulumi.Output<string | undefined>;

  constructor(name: string, args: TunnelArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Tunnel", name, {}, opts);
    if (args.mode === "none") {
      this.publicUrl = pulumi.output(undefined);
      this.registerOutputs({ publicUrl: this.publicUrl });
      return;
    }
    const mode = args.mode;
    const labels = labelsFor(COMPONENTS.cloudflared);
    const selector = selectorFor(COMPONENTS.cloudflared);
    const meta = { namespace: args.namespace, name: COMPONENTS.cloudflared, labels };
    const env: k8s.types.input.core.v1.EnvVar[] = [];
    if (mode === "named") {
      if (!args.token) throw new Error("a named tunnel needs its token");
      const secret = new k8s.core.v1.Secret(
        "cloudflared",
        { metadata: { ...meta, name: "cloudflared-token" }, stringData: { token: args.token } },
        { parent: this },
      );
      env.push({
        name: "TUNNEL_TOKEN",
        valueFrom: { secretKeyRef: { name: secret.metadata.name, key: "token" } },
      });
    }
    new k8s.apps.v1.Deployment(
      "cloudflared",
      {
        metadata: meta,
        spec: {
          replicas: 1,
          selector: { matchLabels: selector },
          template: {
            metadata: { labels: { ...labels, ...selector } },
            spec: podSpec({
              container: {
                name: COMPONENTS.cloudflared,
                image: args.image,
                args: pulumi.output(args.gatewayUrl).apply((url) => cloudflaredArgs(mode, url)),
                env,
                ports: [{ name: "metrics", containerPort: TUNNEL_METRICS_PORT }],
                startupProbe: startupProbe("/ready", "metrics"),
                livenessProbe: httpProbe("/ready", "metrics", 15),
                readinessProbe: httpProbe("/ready", "metrics"),
                resources: resources({ cpu: "20m", memory: "64Mi", memoryLimit: "256Mi" }),
              },
            }),
          },
        },
      },
      { parent: this },
    );
    // The controller reads a quick tunnel's hostname from the metrics port (/quicktunnel).
    new k8s.core.v1.Service(
      "cloudflared-metrics",
      {
        metadata: { ...meta, name: "cloudflared-metrics" },
        spec: { selector, ports: [{ name: "metrics", port: TUNNEL_METRICS_PORT, targetPort: "metrics" }] },
      },
      { parent: this },
    );
    this.publicUrl = pulumi.output(mode === "named" ? `https://${args.hostname}` : undefined);
    this.registerOutputs({ publicUrl: this.publicUrl });
  }
}
