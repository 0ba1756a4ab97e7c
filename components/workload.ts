import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

type Container = k8s.types.input.core.v1.Container;
type PodSpec = k8s.types.input.core.v1.PodSpec;

export interface ContainerSizing {
  cpu: string;
  memory: string;
  cpuLimit?: string;
  memoryLimit: string;
}

/** Non-root, read-only, no privilege escalation: what every container here runs with. */
export const restrictedSecurityContext: k8s.types.input.core.v1.SecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

export function resources(size: ContainerSizing): k8s.types.input.core.v1.ResourceRequirements {
  return {
    requests: { cpu: size.cpu, memory: size.memory },
    limits: { memory: size.memoryLimit, ...(size.cpuLimit ? { cpu: size.cpuLimit } : {}) },
  };
}

export function httpProbe(
  path: string,
  port: number | string,
  periodSeconds = 10,
): k8s.types.input.core.v1.Probe {
  return { httpGet: { path, port }, periodSeconds, timeoutSeconds: 3, failureThreshold: 3 };
}

/**
 * Holds the liveness probe back until the process first answers: LiteLLM takes ~30 s to import
 * on a busy two-core node (the Node.js runtime ~10 s), which used two of the liveness probe's
 * three failures, so a slower start got the container killed in a restart loop. Up to 3 minutes
 * to start, checked every 2 s so readiness is not delayed.
 */
export function startupProbe(path: string, port: number | string): k8s.types.input.core.v1.Probe {
  return { httpGet: { path, port }, periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 90 };
}

/** A pod spec running one container of `image` as an unprivileged user (uid 65532). */
export function podSpec(args: {
  serviceAccountName?: pulumi.Input<string> | undefined;
  container: Container;
  volumes?: k8s.types.input.core.v1.Volume[];
  uid?: number;
  affinity?: k8s.types.input.core.v1.Affinity;
}): PodSpec {
  const uid = args.uid ?? 65532;
  return {
    ...(args.serviceAccountName
      ? { serviceAccountName: args.serviceAccountName }
      : { automountServiceAccountToken: false }),
    securityContext: { runAsNonRoot: true, runAsUser: uid, runAsGroup: uid, fsGroup: uid },
    containers: [{ securityContext: restrictedSecurityContext, ...args.container }],
    ...(args.volumes ? { volumes: args.volumes } : {}),
    ...(args.affinity ? { affinity: args.affinity } : {}),
  };
}

/** Environment variables every runtime sub-command reads. */
export function runtimeEnv(extra: k8s.types.input.core.v1.EnvVar[] = []): k8s.types.input.core.v1.EnvVar[] {
  return [{ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } }, ...extra];
}
