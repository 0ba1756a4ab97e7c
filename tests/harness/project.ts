import * as fs from "node:fs";
import * as path from "node:path";
import type { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { kubeRequest } from "./controlPlane";
import { testStack } from "./pulumi";

export const REPO_ROOT = path.resolve(__dirname, "../..");

/**
 * A project directory for one test stack that runs this repository's real program (index.ts)
 * without writing stack files into the checkout: Pulumi.yaml here points `main` at the repo.
 * The stack starts from Pulumi.dev.yaml, the documented example, plus `config` overrides.
 */
export async function programStack(opts: {
  dir: string;
  stackName: string;
  config?: ConfigMap;
  env?: Record<string, string>;
  /** Start from Pulumi.dev.yaml (default) or from an empty config. */
  fromDevStack?: boolean;
}): Promise<Stack> {
  const projectDir = path.join(opts.dir, "project");
  fs.mkdirSync(projectDir, { recursive: true });
  const pulumiYaml = fs
    .readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")
    .replace(/^runtime:/m, `main: ${path.relative(projectDir, REPO_ROOT)}\nruntime:`);
  fs.writeFileSync(path.join(projectDir, "Pulumi.yaml"), pulumiYaml);
  if (opts.fromDevStack !== false) {
    fs.copyFileSync(
      path.join(REPO_ROOT, "Pulumi.dev.yaml"),
      path.join(projectDir, `Pulumi.${opts.stackName}.yaml`),
    );
  }
  return testStack({
    workDir: projectDir,
    stackName: opts.stackName,
    stateDir: path.join(opts.dir, "state"),
    config: opts.config,
    env: opts.env,
  });
}

/**
 * A stack of a fixture program (`tests/fixtures/<name>/`) run from a project directory under
 * `dir`, so no stack file lands in the checkout: Pulumi.yaml there points `main` at the fixture.
 */
export async function fixtureStack(opts: {
  fixture: string;
  dir: string;
  stackName: string;
  config?: ConfigMap;
}): Promise<Stack> {
  const projectDir = path.join(opts.dir, "project");
  fs.mkdirSync(projectDir, { recursive: true });
  const fixture = path.join(REPO_ROOT, "tests/fixtures", opts.fixture);
  fs.writeFileSync(
    path.join(projectDir, "Pulumi.yaml"),
    fs
      .readFileSync(path.join(fixture, "Pulumi.yaml"), "utf8")
      .replace(/^runtime:/m, `main: ${path.relative(projectDir, fixture)}\nruntime:`),
  );
  return testStack({
    workDir: projectDir,
    stackName: opts.stackName,
    stateDir: path.join(opts.dir, "state"),
    config: opts.config,
  });
}

/** anvil's fourth development key, the buyer's wallet in test stacks (a test value, never a real wallet). */
export const TEST_BUYER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

/**
 * The program in kubeconfig mode on `cluster`, in `namespace`, with one purchase and the buyer's
 * key (so the buyer has its Secret and ledger volume); Pulumi.dev.yaml gives the rest.
 */
export function kubeconfigModeConfig(cluster: { kubeconfig: string }, namespace: string): ConfigMap {
  return {
    "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
    "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
    "obol-stack:namespace": { value: namespace },
    "obol-stack:purchases": {
      value: JSON.stringify([
        {
          name: "remote-llama",
          endpoint: "https://other-seller.example.com/services/llama",
          model: "llama3.2",
          payment: { network: "base-sepolia", maxPrice: "0.002" },
          budget: { maxPerRequest: "0.002", maxPerDay: "1", maxTotal: "10" },
        },
      ]),
    },
    "obol-stack:buyerSignerKey": { value: TEST_BUYER_KEY, secret: true },
  };
}

/** The buyer's ledger volume: a pre-provisioned PersistentVolume (the control plane has no provisioner). */
export async function createLedgerVolume(target: KubeTarget, name: string): Promise<void> {
  await kubeRequest(target.server, target.token, "POST", "/api/v1/persistentvolumes", {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name },
    spec: {
      capacity: { storage: "1Gi" },
      accessModes: ["ReadWriteOnce"],
      hostPath: { path: `/tmp/${name}` },
    },
  });
}

export interface KubeTarget {
  server: string;
  token: string;
}

export async function kubeGet<T = Record<string, unknown>>(
  target: KubeTarget,
  apiPath: string,
): Promise<{ status: number; body: T }> {
  const res = await kubeRequest(target.server, target.token, "GET", apiPath);
  return { status: res.status, body: (res.status === 200 ? JSON.parse(res.body) : {}) as T };
}

interface DeploymentList {
  items: { metadata: { name: string }; spec: { replicas: number }; status: { availableReplicas?: number } }[];
}

/** Names of Deployments in `namespace`, each with whether all its replicas are available. */
export async function deploymentAvailability(
  target: KubeTarget,
  namespace: string,
): Promise<Record<string, boolean>> {
  const { body } = await kubeGet<DeploymentList>(target, `/apis/apps/v1/namespaces/${namespace}/deployments`);
  return Object.fromEntries(
    (body.items ?? []).map((d) => [d.metadata.name, (d.status.availableReplicas ?? 0) >= d.spec.replicas]),
  );
}

export async function serviceOfferNames(target: KubeTarget, namespace: string): Promise<string[]> {
  const { body } = await kubeGet<{ items?: { metadata: { name: string } }[] }>(
    target,
    `/apis/obol.org/v1alpha1/namespaces/${namespace}/serviceoffers`,
  );
  return (body.items ?? []).map((i) => i.metadata.name).sort();
}
