import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ENV, fileEnv, SECRET_FILES, SECRETS_DIR, secretFilePath } from "../api/contract";
import { labelsFor, selectorFor } from "./labels";
import { childOf } from "./naming";
import { httpProbe, podSpec, resources, runtimeEnv, startupProbe } from "./workload";

/** Secrets a runtime sub-command reads (api/contract.ts SECRET_FILES), by key. */
export type RuntimeSecrets = { [K in keyof typeof SECRET_FILES]?: pulumi.Input<string> };

export interface RuntimeWorkloadArgs<
  Served extends boolean = boolean,
  Internal extends number | undefined = number | undefined,
> {
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
  internalPort?: Internal;
  /** Whether the main port gets a Service: then `url` and `serviceName` are outputs. */
  service: Served;
  /** Namespaced RBAC rules; none means no ServiceAccount token is mounted at all. */
  rules?: k8s.types.input.rbac.v1.PolicyRule[];
  env?: k8s.types.input.core.v1.EnvVar[];
  /**
   * Secret values: each is a file of one Secret mounted at SECRETS_DIR, and `<VAR>_FILE` tells
   * the runtime where (e.g. SIGNER_KEY_FILE); never an env literal.
   */
  secrets?: RuntimeSecrets;
  replicas?: number;
  /**
   * Keep serving through node drains and rollouts: a PodDisruptionBudget (at most one pod away
   * at a time) and pods spread over nodes (preferred, so a one-node cluster still schedules).
   */
  highlyAvailable?: boolean;
  /** A persistent volume for state that must survive restarts (one replica, Recreate rollouts). */
  persistentVolume?: { mountPath: string; size: string };
  /**
   * The fixed name this workload's children had before they were named from it (components/
   * naming.ts); set only for the instance stacks from then hold.
   */
  formerChildName?: string | undefined;
}

/**
 * One sub-command of the runtime image as a Deployment: a ServiceAccount with exactly the
 * rules it needs, probes on its health endpoints, requests and limits, and a Service if asked.
 * Kubernetes object names stay `component` (the runtime finds its peers by them); Pulumi names
 * come from `name`, so two instances live side by side in different namespaces.
 */
export class RuntimeWorkload<
  Served extends boolean = boolean,
  Internal extends number | undefined = undefined,
> extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  /** The main Service's name and in-cluster URL: outputs exactly when `service` is true. */
  readonly serviceName: Served extends true ? pulumi.Output<string> : undefined;
  readonly url: Served extends true ? pulumi.Output<string> : undefined;
  /** The in-cluster-only URL of `internalPort`: an output exactly when there is one. */
  readonly internalUrl: Internal extends number ? pulumi.Output<string> : undefined;

  constructor(
    name: string,
    args: RuntimeWorkloadArgs<Served, Internal>,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("obol:index:RuntimeWorkload", name, {}, opts);
    const labels = labelsFor(args.component);
    const selector = selectorFor(args.component);
    const meta = { namespace: args.namespace, name: args.component, labels };
    const child = childOf(this, name, args.formerChildName);

    let serviceAccountName: pulumi.Output<string> | undefined;
    if (args.rules && args.rules.length > 0) {
      const sa = new k8s.core.v1.ServiceAccount(name, { metadata: meta }, child);
      const role = new k8s.rbac.v1.Role(name, { metadata: meta, rules: args.rules }, child);
      new k8s.rbac.v1.RoleBinding(
        name,
        {
          metadata: meta,
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
          subjects: [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: args.namespace }],
        },
        child,
      );
      serviceAccountName = sa.metadata.name;
    }

    const volumes: k8s.types.input.core.v1.Volume[] = [{ name: "tmp", emptyDir: {} }];
    const volumeMounts: k8s.types.input.core.v1.VolumeMount[] = [{ name: "tmp", mountPath: "/tmp" }];
    const secretEnv: k8s.types.input.core.v1.EnvVar[] = [];
    const secrets = Object.entries(args.secrets ?? {}) as [keyof typeof SECRET_FILES, pulumi.Input<string>][];
    if (secrets.length > 0) {
      const stringData: Record<string, pulumi.Input<string>> = {};
      for (const [key, value] of secrets) {
        stringData[SECRET_FILES[key]] = value;
        secretEnv.push({ name: fileEnv(ENV[key]), value: secretFilePath(SECRET_FILES[key]) });
      }
      const secret = new k8s.core.v1.Secret(
        name,
        { metadata: { ...meta, name: `${args.component}-secrets` }, stringData },
        child,
      );
      volumes.push({ name: "secrets", secret: { secretName: secret.metadata.name, defaultMode: 0o400 } });
      volumeMounts.push({ name: "secrets", mountPath: SECRETS_DIR, readOnly: true });
    }

    if (args.persistentVolume) {
      const claim = new k8s.core.v1.PersistentVolumeClaim(
        name,
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
        child,
      );
      volumes.push({ name: "data", persistentVolumeClaim: { claimName: claim.metadata.name } });
      volumeMounts.push({ name: "data", mountPath: args.persistentVolume.mountPath });
    }

    this.deployment = new k8s.apps.v1.Deployment(
      name,
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
                  ...secretEnv,
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
      child,
    );
    if (args.highlyAvailable) {
      new k8s.policy.v1.PodDisruptionBudget(
        name,
        { metadata: meta, spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
        child,
      );
    }

    let service: k8s.core.v1.Service | undefined;
    if (args.service) {
      service = new k8s.core.v1.Service(
        name,
        {
          metadata: meta,
          spec: { selector, ports: [{ name: "http", port: args.port, targetPort: "http" }] },
        },
        child,
      );
    }
    let internal: k8s.core.v1.Service | undefined;
    if (args.internalPort) {
      internal = new k8s.core.v1.Service(
        `${name}-internal`,
        {
          metadata: { ...meta, name: `${args.component}-internal` },
          spec: { selector, ports: [{ name: "internal", port: args.internalPort, targetPort: "internal" }] },
        },
        childOf(this, `${name}-internal`, args.formerChildName && `${args.formerChildName}-internal`),
      );
    }
    // The output types follow `service` and `internalPort` (see the class's type parameters).
    this.serviceName = service?.metadata.name as this["serviceName"];
    this.url = (service && serviceUrl(service, args.port)) as this["url"];
    this.internalUrl = (
      internal && args.internalPort ? serviceUrl(internal, args.internalPort) : undefined
    ) as this["internalUrl"];
    this.registerOutputs({ serviceName: this.serviceName, url: this.url, internalUrl: this.internalUrl });
  }
}

/** A Service's in-cluster URL. */
export function serviceUrl(service: k8s.core.v1.Service, port: number): pulumi.Output<string> {
  return pulumi.interpolate`http://${service.metadata.name}.${service.metadata.namespace}.svc:${port}`;
}
