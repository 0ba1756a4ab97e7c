/**
 * Two stacks, one cluster (docs/adr/0004-two-stacks-one-cluster.md): a seller and a buyer stack in two namespaces share
 * the cluster-scoped obol.org CRDs. Either can come up first, and destroying one leaves the
 * other's objects untouched and its `pulumi preview` empty. Real engine (Automation API,
 * file:// backend), kubeconfig mode, on a control plane of its own.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { type ControlPlane, kubeRequest, startControlPlane } from "../harness/controlPlane";
import { scratchDir } from "../harness/env";
import { deploymentAvailability, kubeGet, programStack } from "../harness/project";
import { outputCollector } from "../harness/pulumi";

/** anvil's fourth development key (a test value, never a real wallet). */
const BUYER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const CRDS = ["agentidentities.obol.org", "purchaserequests.obol.org", "serviceoffers.obol.org"];

type Uids = Record<string, string>;

describe("two stacks on one cluster share the cluster-scoped objects safely", function () {
  this.timeout(30 * 60_000);

  const dir = scratchDir("two-stacks");
  const log = outputCollector();
  let cp: ControlPlane;
  let alice: Stack;
  let bob: Stack;
  const ns = { alice: `alice-${process.pid}`, bob: `bob-${process.pid}` };

  /** uid of every obol.org object in a namespace, by kind/name: a recreated object has a new uid. */
  async function crUids(namespace: string): Promise<Uids> {
    const out: Uids = {};
    for (const plural of ["serviceoffers", "agentidentities", "purchaserequests"]) {
      const { body } = await kubeGet<{ items?: { metadata: { name: string; uid: string } }[] }>(
        cp,
        `/apis/obol.org/v1alpha1/namespaces/${namespace}/${plural}`,
      );
      for (const item of body.items ?? []) out[`${plural}/${item.metadata.name}`] = item.metadata.uid;
    }
    return out;
  }
  async function crdNames(): Promise<string[]> {
    const { body } = await kubeGet<{ items: { metadata: { name: string } }[] }>(
      cp,
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    );
    return body.items
      .map((i) => i.metadata.name)
      .filter((n) => n.endsWith(".obol.org"))
      .sort();
  }
  async function assertIntact(stack: Stack, namespace: string, uids: Uids) {
    assert.deepEqual(await crdNames(), CRDS, "the CRDs are still there");
    assert.deepEqual(await crUids(namespace), uids, "the same objects, never recreated");
    const deployments = await deploymentAvailability(cp, namespace);
    assert.deepEqual(Object.keys(deployments).sort(), [
      "litellm",
      "obol-controller",
      "x402-buyer",
      "x402-gateway",
    ]);
    for (const [name, available] of Object.entries(deployments)) assert.ok(available, `${name} is Available`);
    const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
  }
  const up = async (stack: Stack) => {
    const result = await stack.up({ onOutput: log.onOutput });
    assert.equal(result.summary.result, "succeeded", log.text());
  };
  const destroy = async (stack: Stack, namespace: string) => {
    const result = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(result.summary.result, "succeeded", log.text());
    assert.deepEqual(await crUids(namespace), {}, "the destroyed stack's own objects are gone");
  };

  before(async () => {
    cp = await startControlPlane({ dir: path.join(dir, "cluster") });
    const common = (namespace: string) => ({
      "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
      "obol-stack:kubeconfig": { value: cp.kubeconfig, secret: true },
      "obol-stack:namespace": { value: namespace },
      "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
    });
    // Alice sells Pulumi.dev.yaml's two offers; Bob buys one of them.
    alice = await programStack({
      dir: path.join(dir, "alice"),
      stackName: "alice",
      config: common(ns.alice),
    });
    bob = await programStack({
      dir: path.join(dir, "bob"),
      stackName: "bob",
      config: {
        ...common(ns.bob),
        "obol-stack:offers": { value: "[]" },
        "obol-stack:purchases": {
          value: JSON.stringify([
            {
              name: "alice-llama",
              endpoint: `http://x402-gateway.${ns.alice}.svc:8080/services/llama`,
              model: "llama3.2",
              payment: { network: "base-sepolia", maxPrice: "0.002" },
              budget: { maxPerRequest: "0.002", maxTotal: "1" },
            },
          ]),
        },
        "obol-stack:buyerSignerKey": { value: BUYER_KEY, secret: true },
      },
    });
    // Bob's buyer keeps its ledger on a volume: a pre-provisioned one (no provisioner here).
    await kubeRequest(cp.server, cp.token, "POST", "/api/v1/persistentvolumes", {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: "bob-ledger" },
      spec: {
        capacity: { storage: "1Gi" },
        accessModes: ["ReadWriteOnce"],
        hostPath: { path: "/tmp/bob-ledger" },
      },
    });
  });

  after(async () => {
    for (const stack of [alice, bob]) await stack?.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    await cp?.destroy();
  });

  it("up Alice, up Bob, destroy Alice: Bob's objects are intact and his preview shows no changes", async () => {
    await up(alice);
    await up(bob);
    assert.deepEqual(Object.keys(await crUids(ns.alice)).sort(), [
      "agentidentities/default",
      "serviceoffers/llama",
      "serviceoffers/weather",
    ]);
    const bobs = await crUids(ns.bob);
    assert.deepEqual(Object.keys(bobs).sort(), ["agentidentities/default", "purchaserequests/alice-llama"]);
    await destroy(alice, ns.alice);
    await assertIntact(bob, ns.bob, bobs);
  });

  it("the other order: Alice comes up beside Bob, then destroying Bob leaves Alice intact", async () => {
    await up(alice);
    const alices = await crUids(ns.alice);
    await destroy(bob, ns.bob);
    await assertIntact(alice, ns.alice, alices);
  });
});
