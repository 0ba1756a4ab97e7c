import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, PORTS } from "../api/contract";
import { labelsFor, selectorFor } from "./labels";
import { childOf, formerly } from "./naming";
import { httpProbe, podSpec, resources, startupProbe } from "./workload";

const TUNNEL_METRICS_PORT = PORTS.tunnelMetrics;

interface TunnelCommon {
  namespace: pulumi.Input<string>;
  image: string;
  /** The only thing the tunnel exposes: the gateway's in-cluster URL. */
  gatewayUrl: pulumi.Input<string>;
}

export type TunnelArgs =
  | ({ mode: "none" | "quick" } & TunnelCommon)
  /** Named: the public hostname configured for the tunnel in Cloudflare, and its token (a secret). */
  | ({ mode: "named"; hostname: string; token: pulumi.Input<string> } & TunnelCommon);

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
  /**
   * cloudflared's metrics server (in-cluster), where a quick tunnel's current hostname is read
   * (`/quicktunnel`); undefined in mode "none", where no cloudflared runs.
   */
  readonly metricsUrl: pulumi.Output<string> | undefined;

  constructor(name: string, args: TunnelArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Tunnel", name, {}, opts);
    if (args.mode === "none") {
      this.publicUrl = pulumi.output(undefined);
      this.metricsUrl = undefined;
      this.registerOutputs({ publicUrl: this.publicUrl });
      return;
    }
    const mode = args.mode;
    // Stacks from before named these children with fixed strings (components/naming.ts).
    const former = (fixed: string) => formerly(name, "tunnel", fixed);
    const labels = labelsFor(COMPONENTS.cloudflared);
    const selector = selectorFor(COMPONENTS.cloudflared);
    const meta = { namespace: args.namespace, name: COMPONENTS.cloudflared, labels };
    const env: k8s.types.input.core.v1.EnvVar[] = [];
    if (args.mode === "named") {
      const secret = new k8s.core.v1.Secret(
        name,
        { metadata: { ...meta, name: "cloudflared-token" }, stringData: { token: args.token } },
        childOf(this, name, former("cloudflared")),
      );
      env.push({
        name: "TUNNEL_TOKEN",
        valueFrom: { secretKeyRef: { name: secret.metadata.name, key: "token" } },
      });
    }
    new k8s.apps.v1.Deployment(
      name,
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
      childOf(this, name, former("cloudflared")),
    );
    // The controller reads a quick tunnel's hostname from the metrics port (/quicktunnel).
    const metrics = new k8s.core.v1.Service(
      `${name}-metrics`,
      {
        metadata: { ...meta, name: "cloudflared-metrics" },
        spec: { selector, ports: [{ name: "metrics", port: TUNNEL_METRICS_PORT, targetPort: "metrics" }] },
      },
      childOf(this, `${name}-metrics`, former("cloudflared-metrics")),
    );
    this.metricsUrl = pulumi.interpolate`http://${metrics.metadata.name}.${metrics.metadata.namespace}.svc:${TUNNEL_METRICS_PORT}`;
    this.publicUrl = pulumi.output(args.mode === "named" ? `https://${args.hostname}` : undefined);
    this.registerOutputs({ publicUrl: this.publicUrl, metricsUrl: this.metricsUrl });
  }
}
