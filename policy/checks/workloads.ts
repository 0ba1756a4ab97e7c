/** Checks on the pods that workloads (Deployments and the like) run: images, sizing, users. */
import { asArray, asObject, asString, at, isUnknown, type Json, type JsonObject } from "./values";

/** Where each workload kind keeps its pod spec. */
const POD_SPEC_PATHS: Record<string, string[]> = {
  "kubernetes:apps/v1:Deployment": ["spec", "template", "spec"],
  "kubernetes:apps/v1:StatefulSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:DaemonSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:ReplicaSet": ["spec", "template", "spec"],
  "kubernetes:batch/v1:Job": ["spec", "template", "spec"],
  "kubernetes:batch/v1:CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
  "kubernetes:core/v1:Pod": ["spec"],
};

export const WORKLOAD_TYPES: readonly string[] = Object.keys(POD_SPEC_PATHS);

export interface ContainerAt {
  /** e.g. `Deployment "litellm" container "litellm"`. */
  label: string;
  container: JsonObject;
  pod: JsonObject;
}

/** The pod spec of a workload resource, or undefined for other types or while unknown. */
export function podSpecOf(type: string, props: JsonObject): JsonObject | undefined {
  const path = POD_SPEC_PATHS[type];
  return path ? asObject(at(props, ...path)) : undefined;
}

/** Every container (init containers too) a workload runs, each labelled for messages. */
export function containersOf(type: string, props: JsonObject): ContainerAt[] {
  const pod = podSpecOf(type, props);
  if (!pod) return [];
  const kind = type.split(":").pop();
  const workload = `${kind} "${asString(at(props, "metadata", "name")) ?? "?"}"`;
  return [...asArray(pod.initContainers), ...asArray(pod.containers)]
    .map((c: Json) => asObject(c))
    .filter((c): c is JsonObject => c !== undefined)
    .map((container) => ({
      label: `${workload} container "${asString(container.name) ?? "?"}"`,
      container,
      pod,
    }));
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;
/** Tags that name a moving target rather than one build. */
const FLOATING_TAG =
  /^(latest|stable|main|master|edge|nightly|dev|develop|beta|alpha|lts|current|unstable|rolling|v?\d+(\.\d+)?)$/;

/** Why `image` is not pinned, or undefined when it is. */
export function imageProblem(image: string, requireDigest: boolean): string | undefined {
  if (DIGEST.test(image)) return undefined;
  if (requireDigest)
    return `image "${image}" is not pinned by digest (name@sha256:...), which policy config requireDigest asks for`;
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon <= lastSlash)
    return `image "${image}" has no tag, which means latest: pin an exact tag (name:1.2.3) or a digest`;
  const tag = image.slice(colon + 1);
  if (FLOATING_TAG.test(tag)) {
    return `image "${image}" uses the moving tag "${tag}": pin an exact tag (name:1.2.3) or a digest (name@sha256:...)`;
  }
  return undefined;
}

export function checkImagesPinned(type: string, props: JsonObject, requireDigest: boolean): string[] {
  const problems: string[] = [];
  for (const { label, container } of containersOf(type, props)) {
    if (isUnknown(container.image)) continue;
    const image = asString(container.image);
    const problem = image === undefined ? "has no image" : imageProblem(image, requireDigest);
    if (problem) problems.push(`${label}: ${problem}`);
  }
  return problems;
}

/** Requests for CPU and memory and a memory limit (a CPU limit only throttles, so it is optional). */
export function checkResources(type: string, props: JsonObject): string[] {
  const problems: string[] = [];
  for (const { label, container } of containersOf(type, props)) {
    if (isUnknown(container.resources)) continue;
    const missing = (
      [
        ["requests", "cpu"],
        ["requests", "memory"],
        ["limits", "memory"],
      ] as const
    )
      .filter(([group, key]) => at(container, "resources", group, key) === undefined)
      .map(([group, key]) => `resources.${group}.${key}`);
    if (missing.length > 0) {
      problems.push(
        `${label}: sets no ${missing.join(", ")}; without requests and limits one pod can starve the gateway`,
      );
    }
  }
  return problems;
}

/** Every container must run as a non-root user, unprivileged, by the pod's or its own securityContext. */
export function checkNonRoot(type: string, props: JsonObject): string[] {
  const problems: string[] = [];
  for (const { label, container, pod } of containersOf(type, props)) {
    const own = asObject(container.securityContext) ?? {};
    const podContext = asObject(pod.securityContext) ?? {};
    const nonRoot = own.runAsNonRoot ?? podContext.runAsNonRoot;
    const user = own.runAsUser ?? podContext.runAsUser;
    if (isUnknown(nonRoot) || isUnknown(user)) continue;
    if (user === 0)
      problems.push(`${label}: runs as root (runAsUser: 0); use an unprivileged uid such as 65532`);
    else if (nonRoot !== true) {
      problems.push(`${label}: does not set runAsNonRoot: true (in its own or the pod's securityContext)`);
    }
    if (own.privileged === true) problems.push(`${label}: is privileged; no obol-stack workload needs that`);
  }
  return problems;
}
