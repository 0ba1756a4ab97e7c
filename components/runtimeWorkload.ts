import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ENV, SECRETS_DIR } from "../api/contract";
import { labelsFor, selectorFor } from "./labels";
import { httpProbe, podSpec, resources, runtimeEnv, startupProbe } from "./workload";

export interface RuntimeWorkloadArgs {
  namespace: pulumi.Input<string>;
  /** Component name: object names and labels. */
  component: string;
  image: string;
  /** Sub-command of the runtime image (controller, gateway, facilitator, buyer). */
  command: string;
  args?: pulumi.Input<string>[];
  /** HTTP port serving /healthz and /readyz; also the Service port when `service`. */
  port: number;
  /**
   * A second, in-cluster-only port (status reports, /metrics). It gets its own Service, so the
   * tunnel, which targets the main Service, can never reach it.
   */
  internalPort?: number;
  service?: boolean;
  /** Namespaced RBAC rules; none means no ServiceAccount token is mounted at all. */
  rules?: k8s.types.input.rbac.v1.PolicyRule[];
  env?: k8s.types.input.core.v1.EnvVar[];
  /** Secret values, mounted as files under /var/run/secrets/obol (never as env literals). */
  secretFiles?: Record<string, pulumi.Input<string>>;
  replicas?: number;
  /**
   * Keep serving through node drains and rollouts: a PodDisruptionBudget (at most one pod away
   * at a time) and pods spread over nodes (preferred, so a one-node cluster still schedules).
   */
  highlyAvailable?: boolean;
  /** A persistent volume for state that must survive restarts (one replica, Recreate rollouts). */
  persistentVolume?: { mountPath: string; size: string };
}

/**
 * One sub-command of the runtime image as a Deployment: a ServiceAccount with exactly the
 * rules it needs, probes on its health endpoints, requests and limits, and a Service if asked.
 */
export class RuntimeWorkload extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly serviceName?: pulumi.Output<string>;
  readonly url?: pulumi.Output<string>;
  readonly internalUrl?: pulumi.Output<string>;

  constructor(name: string, args: RuntimeWorkloadArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:RuntimeWorkload", name, {}, opts);
    const labels = labelsFor(args.component);
    const selector = selectorFor(args.component);
    const meta = { namespace: args.namespace, name: args.component, labels };

    let serviceAccountName: pulumi.Output<string> | undefined;
    if (args.rules && args.rules.length > 0) {
      const sa = new k8s.core.v1.ServiceAccount(args.component, { metadata: meta }, { parent: this });
      const role = new k8s.rbac.v1.Role(
        args.component,
        { metadata: meta, rules: args.rules },
        { parent: this },
      );
      new k8s.rbac.v1.RoleBinding(
        args.component,
        {
          metadata: meta,
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
          subjects: [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: args.namespace }],
        },
        { parent: this },
      );
      serviceAccountName = sa.metadata.name;
    }

    const volumes: k8s.types.input.core.v1.Volume[] = [{ name: "tmp", emptyDir: {} }];
    const volumeMounts: k8s.types.input.core.v1.VolumeMount[] = [{ name: "tmp", mountPath: "/tmp" }];
    if (args.secretFiles && Object.keys(args.secretFiles).length > 0) {
      const secret = new k8s.core.v1.Secret(
        args.component,
        { metadata: { ...meta, name: `${args.component}-secrets` }, stringData: args.secretFiles },
        { parent: this },
      );
      volumes.push({ name: "secrets", secret: { secretName: secret.metadata.name, defaultMode: 0o400 } });
      volumeMounts.push({ name: "secrets", mountPath: SECRETS_DIR, readOnly: true });
    }

    if (args.persistentVolume) {
      const claim = new k8s.core.v1.PersistentVolumeClaim(
        args.component,
        {
          metadata: {
            ...meta,
            name: `${args.component}-data`,
            // Provisioners such as k3d's local-path bind when the pod is scheduled.
            annotations: { "pulumi.com/skipAwait": "true" },
          },
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: args.persistentVolume.size } },
          },
        },
        { parent: this },
      );
      volumes.push({ name: "data", persistentVolumeClaim: { claimName: claim.metadata.name } });
      volumeMounts.push({ name: "data", mountPath: args.persistentVolume.mountPath });
    }

    this.deployment = new k8s.apps.v1.Deployment(
      args.component,
      {
        metadata: meta,
        spec: {
          replicas: args.persistentVolume ? 1 : (args.replicas ?? 1),
          // Two pods must never write the same state at once.
          ...(args.persistentVolume ? { strategy: { type: "Recreate" } } : {}),
          selector: { matchLabels: selector },
          template: {
            metadata: { labels: { ...labels, ...selector } },
            spec: podSpec({
              serviceAccountName,
              container: {
                name: args.component,
                image: args.image,
                args: [args.command, ...(args.args ?? [])],
                ports: [
                  { name: "http", containerPort: args.port },
                  ...(args.internalPort ? [{ name: "internal", containerPort: args.internalPort }] : []),
                ],
                env: runtimeEnv([
                  { name: ENV.port, value: String(args.port) },
                  ...(args.internalPort
                    ? [{ name: ENV.internalPort, value: String(args.internalPort) }]
                    : []),
                  ...(args.env ?? []),
                ]),
                startupProbe: startupProbe("/healthz", "http"),
                livenessProbe: httpProbe("/healthz", "http", 15),
                readinessProbe: httpProbe("/readyz", "http", 5),
                resources: resources({ cpu: "50m", memory: "96Mi", memoryLimit: "256Mi" }),
                volumeMounts,
              },
              volumes,
              ...(args.highlyAvailable
                ? {
                    affinity: {
                      podAntiAffinity: {
                        preferredDuringSchedulingIgnoredDuringExecution: [
                          {
                            weight: 100,
                            podAffinityTerm: {
                              topologyKey: "kubernetes.io/hostname",
                              labelSelector: { matchLabels: selector },
                            },
                          },
                        ],
                      },
                    },
                  }
                : {}),
            }),
          },
        },
      },
      { parent: this },
    );
    if (args.highlyAvailable) {
      new k8s.policy.v1.PodDisruptionBudget(
        args.component,
        { metadata: meta, spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
        { parent: this },
      );
    }

    if (args.service) {
      const service = new k8s.core.v1.Service(
        args.component,
        {
          metadata: meta,
          spec: { selector, ports: [{ name: "http", port: args.port, targetPort: "http" }] },
        },
        { parent: this },
      );
      this.serviceName = service.metadata.name;
      this.url = pulumi.interpolate`http://${service.metadata.name}.${service.metadata.namespace}.svc:${args.port}`;
    }
    if (args.internalPort) {
      const internal = new k8s.core.v1.Service(
        `${args.component}-internal`,
        {
          metadata: { ...meta, name: `${args.component}-internal` },
          spec: { selector, ports: [{ name: "internal", port: args.internalPort, targetPort: "internal" }] },
        },
        { parent: this },
      );
      this.internalUrl = pulumi.interpolate`http://${internal.metadata.name}.${internal.metadata.namespace}.svc:${args.internalPort}`;
    }
    this.registerOutputs({ serviceName: this.serviceName, url: this.url, internalUrl: this.internalUrl });
  }
}
