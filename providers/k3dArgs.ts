/**
 * Pure helpers for the k3d cluster provider: the exact k3d command lines, and how to read
 * `k3d cluster list -o json`. Kept apart so they are unit-tested and serialize cleanly into the
 * dynamic provider's closure (no imports).
 */

export interface K3dClusterSpec {
  name: string;
  servers: number;
  agents: number;
  /** k3s image (rancher/k3s:<tag>); k3d's default when absent. */
  k3sImage?: string;
}

export function k3dCreateArgs(spec: K3dClusterSpec): string[] {
  const args = [
    "cluster",
    "create",
    spec.name,
    "--servers",
    String(spec.servers),
    "--agents",
    String(spec.agents),
    "--wait",
    "--timeout",
    "300s",
    // Never touch the user's ~/.kube/config: the kubeconfig is a (secret) stack output.
    "--kubeconfig-update-default=false",
    "--kubeconfig-switch-context=false",
    // The x402 gateway is the only public entry point; k3s's bundled Traefik is not needed.
    "--k3s-arg",
    "--disable=traefik@server:*",
  ];
  if (spec.k3sImage) args.push("--image", spec.k3sImage);
  return args;
}

export const k3dListArgs = (): string[] => ["cluster", "list", "-o", "json"];
export const k3dDeleteArgs = (name: string): string[] => ["cluster", "delete", name];
export const k3dStartArgs = (name: string): string[] => ["cluster", "start", name, "--wait"];
export const k3dKubeconfigArgs = (name: string): string[] => ["kubeconfig", "get", name];
export const k3dImageImportArgs = (name: string, images: string[]): string[] => [
  "image",
  "import",
  ...images,
  "--cluster",
  name,
];

export type K3dClusterState = "running" | "stopped" | "absent";

/** Reads a cluster's state from `k3d cluster list -o json` output. */
export function k3dClusterState(listJson: string, name: string): K3dClusterState {
  let clusters: unknown;
  try {
    clusters = JSON.parse(listJson);
  } catch {
    throw new Error(`k3d cluster list printed something that is not JSON: ${listJson.slice(0, 200)}`);
  }
  if (!Array.isArray(clusters)) throw new Error("k3d cluster list -o json did not print a list");
  const cluster = clusters.find(
    (c) => c && typeof c === "object" && (c as { name?: unknown }).name === name,
  ) as { serversRunning?: number; nodes?: { role?: string; State?: { Running?: boolean } }[] } | undefined;
  if (!cluster) return "absent";
  const running =
    typeof cluster.serversRunning === "number"
      ? cluster.serversRunning > 0
      : (cluster.nodes ?? []).some((n) => n.role === "server" && n.State?.Running);
  return running ? "running" : "stopped";
}
