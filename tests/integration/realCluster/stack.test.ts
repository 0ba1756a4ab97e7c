import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../../harness/anvil";
import { defined } from "../../harness/assertions";
import { scratchDir, sharedRealCluster } from "../../harness/env";
import type { ImageName, LocalImage } from "../../harness/images";
import { ensureImages } from "../../harness/images";
import { applyModelServer, runInPod } from "../../harness/journey";
import { type PaymentChain, startPaymentChain } from "../../harness/paymentChain";
import { waitFor } from "../../harness/processes";
import { programStack } from "../../harness/project";
import { outputCollector } from "../../harness/pulumi";
import type { RealCluster } from "../../harness/realCluster";

/**
 * The Pulumi program deployed onto a real node: every pod really runs, with the images built
 * from this repository (controller/Dockerfile), LiteLLM from PyPI at the pinned version, and the
 * tests' OpenAI-compatible model server as the upstream. anvil is bound to the node's address,
 * so the self-run facilitator pod settles on it.
 */

const IMAGES: ImageName[] = ["runtime", "litellm", "modelServer", "distroless"];
const FACILITATOR_KEY = ANVIL_KEYS[1];
const BUYER_KEY = ANVIL_KEYS[3];
const SELLER = privateKeyToAccount(ANVIL_KEYS[2]).address;
const EXPECTED_DEPLOYMENTS = ["litellm", "obol-controller", "x402-buyer", "x402-facilitator", "x402-gateway"];

type Pod = {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
    containers: {
      name: string;
      securityContext?: { readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean };
    }[];
  };
  status: { phase: string; containerStatuses?: { name: string; ready: boolean; restartCount: number }[] };
};

describe("the stack on a real node", function () {
  this.timeout(30 * 60_000);
  const ns = `obol-real-${process.pid}`;
  const llm = `llm-${process.pid}`;
  const dir = scratchDir("real-stack");
  const log = outputCollector();
  let cluster: RealCluster;
  let chain: PaymentChain;
  let images: Record<ImageName, LocalImage>;
  let stack: Stack;

  const kubectlJson = async <T>(args: string[]): Promise<T> =>
    JSON.parse(await cluster.kubectl([...args, "-o", "json"])) as T;
  const pods = async () => (await kubectlJson<{ items: Pod[] }>(["-n", ns, "get", "pods"])).items;

  /** Runs a script in a pod of the stack's namespace (the test Node.js image); its JSON lines. */
  const inPod = (name: string, script: string) => runInPod(cluster, ns, name, script, { NS: ns });

  before(async () => {
    cluster = await sharedRealCluster(IMAGES);
    images = (await ensureImages({ only: IMAGES })) as Record<ImageName, LocalImage>;
    chain = await startPaymentChain(path.join(dir, "logs"), cluster.nodeIp);
    await chain.mint(privateKeyToAccount(BUYER_KEY).address, 10_000_000n);
    // The upstream: the test model server, in its own namespace like a user's Ollama.
    await applyModelServer(cluster, llm, images.modelServer.tag);
    const payment = {
      network: chain.network,
      payTo: SELLER,
      asset: chain.asset,
      price: { perRequest: "0.001" },
    };
    stack = await programStack({
      dir,
      stackName: "real",
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
        "obol-stack:namespace": { value: ns },
        "obol-stack:images": {
          value: JSON.stringify({ runtime: images.runtime.tag, litellm: images.litellm.tag }),
        },
        "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
        "obol-stack:facilitator": { value: JSON.stringify({ mode: "self", rpcUrl: chain.anvil.rpcUrl }) },
        "obol-stack:facilitatorSignerKey": { value: FACILITATOR_KEY, secret: true },
        "obol-stack:buyerSignerKey": { value: BUYER_KEY, secret: true },
        "obol-stack:litellm": {
          value: JSON.stringify({
            models: [
              {
                name: "test-model",
                model: "openai/test-model",
                apiBase: `http://model-server.${llm}.svc:8080/v1`,
              },
            ],
          }),
        },
        "obol-stack:offers": {
          value: JSON.stringify([
            {
              name: "llama",
              type: "inference",
              description: "The test model server, sold per request.",
              model: { name: "test-model" },
              upstream: { service: "model-server", namespace: llm, port: 8080, healthPath: "/health" },
              payment,
            },
            {
              name: "weather",
              type: "http",
              description: "Any HTTP API, with a free route.",
              upstream: { url: `http://model-server.${llm}.svc:8080`, healthPath: "/health" },
              payment,
              routes: [{ path: "/health", gate: "free" }],
            },
          ]),
        },
        "obol-stack:purchases": {
          value: JSON.stringify([
            {
              name: "own-llama",
              endpoint: `http://x402-gateway.${ns}.svc:8080/services/llama`,
              model: "test-model",
              payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice: "0.001" },
              budget: { maxPerRequest: "0.001", maxTotal: "0.01" },
            },
          ]),
        },
      },
    });
  });

  after(async () => {
    if (stack) await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    await cluster?.kubectl(["delete", "namespace", llm, "--wait=false", "--ignore-not-found"]);
    await chain?.anvil.stop();
  });

  it("comes up: every Deployment's pods Running and Ready through their real probes, non-root, read-only, no restarts", async () => {
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    const deployments = await kubectlJson<{ items: { metadata: { name: string } }[] }>([
      "-n",
      ns,
      "get",
      "deployments",
    ]);
    assert.deepEqual(deployments.items.map((d) => d.metadata.name).sort(), EXPECTED_DEPLOYMENTS);
    for (const name of EXPECTED_DEPLOYMENTS) {
      await cluster.kubectl(["-n", ns, "rollout", "status", `deployment/${name}`, "--timeout=300s"]);
    }
    for (const pod of await pods()) {
      assert.equal(pod.status.phase, "Running", pod.metadata.name);
      for (const c of pod.status.containerStatuses ?? []) {
        assert.ok(c.ready, `${pod.metadata.name}/${c.name} is Ready`);
        assert.equal(c.restartCount, 0, `${pod.metadata.name}/${c.name} never restarted`);
      }
      assert.equal(pod.spec.securityContext?.runAsNonRoot, true, pod.metadata.name);
      for (const c of pod.spec.containers)
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
    }
    const claim = await kubectlJson<{ status: { phase: string } }>([
      "-n",
      ns,
      "get",
      "pvc",
      "x402-buyer-data",
    ]);
    assert.equal(claim.status.phase, "Bound");
    // A liveness probe that fails while a process is still starting is one slow start away
    // from a restart loop: the startup probe must hold it back.
    const events = await kubectlJson<{ items: { involvedObject: { name: string }; message?: string }[] }>([
      "-n",
      ns,
      "get",
      "events",
      "--field-selector=reason=Unhealthy",
    ]);
    assert.deepEqual(
      events.items
        .filter((e) => e.message?.startsWith("Liveness probe failed"))
        .map((e) => `${e.involvedObject.name}: ${e.message}`),
      [],
      "no liveness probe failed while a pod started",
    );
  });

  it("serves from inside the cluster: 402 on a paid offer, the free route, every catalog; /metrics only internally", async () => {
    const results = await inPod(
      "gateway-client",
      `
const out = (k, v) => console.log(JSON.stringify({ [k]: v }));
const gw = "http://x402-gateway." + process.env.NS + ".svc:8080";
(async () => {
  const paid = await fetch(gw + "/services/llama/v1/chat/completions", { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "test-model", messages: [] }) });
  out("paid", [paid.status, paid.headers.get("payment-required") !== null]);
  out("free", (await fetch(gw + "/services/weather/health")).status);
  for (const p of ["/", "/api/services.json", "/skill.md", "/openapi.json", "/.well-known/agent-registration.json"])
    out(p, (await fetch(gw + p)).status);
  out("publicMetrics", (await fetch(gw + "/metrics")).status);
  const internal = await fetch("http://x402-gateway-internal." + process.env.NS + ".svc:8081/metrics");
  out("internalMetrics", [internal.status, (await internal.text()).includes("# TYPE")]);
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    assert.deepEqual(results.paid, [402, true]);
    assert.equal(results.free, 200);
    for (const p of [
      "/",
      "/api/services.json",
      "/skill.md",
      "/openapi.json",
      "/.well-known/agent-registration.json",
    ]) {
      assert.equal(results[p], 200, p);
    }
    assert.equal(results.publicMetrics, 404);
    assert.deepEqual(results.internalMetrics, [200, true]);
  });

  /** Chat completions for each model through LiteLLM's Service, from a pod: [status, body] per model. */
  const chatFromPod = async (podName: string, models: string[]) => {
    const secret = await kubectlJson<{ data: Record<string, string> }>([
      "-n",
      ns,
      "get",
      "secret",
      "litellm-secrets",
    ]);
    const masterKey = Buffer.from(secret.data.LITELLM_MASTER_KEY ?? "", "base64").toString();
    const results = await inPod(
      podName,
      `
const litellm = "http://litellm." + process.env.NS + ".svc:4000";
const chat = (model) => fetch(litellm + "/v1/chat/completions", { method: "POST",
  headers: { "content-type": "application/json", authorization: "Bearer ${masterKey}" },
  body: JSON.stringify({ model, messages: [{ role: "user", content: "hello from a pod" }] }) });
(async () => {
  for (const model of ${JSON.stringify(models)}) {
    const res = await chat(model);
    console.log(JSON.stringify({ [model]: [res.status, await res.text()] }));
  }
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    return results as Record<string, [number, string]>;
  };

  it("routes LiteLLM's plain model to the model server, and paid/<model> through the buyer, paid on anvil by the facilitator pod", async () => {
    const sellerBefore = await chain.balanceOf(SELLER);
    const results = await chatFromPod("litellm-client", ["test-model", "paid/test-model"]);
    const [plainStatus, plainBody] = defined(results["test-model"], "the plain model's answer");
    assert.equal(plainStatus, 200, plainBody);
    assert.equal(
      (JSON.parse(plainBody) as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message
        ?.content,
      "model test-model answers: hello from a pod",
    );
    const [paidStatus, paidBody] = defined(results["paid/test-model"], "the paid model's answer");
    assert.equal(paidStatus, 200, paidBody);
    assert.match(paidBody, /model test-model answers: hello from a pod/);
    assert.equal(
      await chain.balanceOf(SELLER),
      sellerBefore + 1000n,
      "the seller was paid 0.001 once, on anvil",
    );
  });

  it("keeps the buyer's ledger across a pod kill", async () => {
    const buyerPod = async () =>
      (await pods()).find((p) => p.metadata.labels?.["app.kubernetes.io/name"] === "x402-buyer");
    const before = defined(await buyerPod(), "the buyer's pod");
    const ledger = async (pod: string) =>
      await cluster.kubectl([
        "-n",
        ns,
        "exec",
        pod,
        "--",
        "/nodejs/bin/node",
        "-e",
        "process.stdout.write(require('fs').readFileSync('/var/lib/obol-buyer/ledger.jsonl', 'utf8'))",
      ]);
    const [paidStatus, paidBody] = defined(
      (await chatFromPod("ledger-client", ["paid/test-model"]))["paid/test-model"],
      "the paid model's answer",
    );
    assert.equal(paidStatus, 200, paidBody);
    const recorded = await ledger(before.metadata.name);
    assert.ok(recorded.trim().length > 0, "the paid call was recorded");
    await cluster.kubectl(["-n", ns, "delete", "pod", before.metadata.name, "--grace-period=0", "--force"]);
    await cluster.kubectl(["-n", ns, "rollout", "status", "deployment/x402-buyer", "--timeout=300s"]);
    await waitFor("a new buyer pod", async () => (await buyerPod())?.metadata.name !== before.metadata.name, {
      timeoutMs: 60_000,
    });
    assert.equal(
      await ledger(defined(await buyerPod(), "the new buyer pod").metadata.name),
      recorded,
      "the new pod reads the same ledger",
    );
  });

  it("destroy removes every object of the stack (the shared CRDs stay), and a second up after destroy works", async () => {
    const destroyed = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(destroyed.summary.result, "succeeded", log.text());
    await waitFor(
      `namespace ${ns} to be gone`,
      async () => {
        try {
          await cluster.kubectl(["get", "namespace", ns]);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    // The CRDs are shared by every stack on the cluster and deleted by none (retainOnDelete,
    // docs/adr/0004-two-stacks-one-cluster.md): they stay, with none of this stack's objects.
    const crds = await cluster.kubectl(["get", "crd", "-o", "name"]);
    assert.match(crds, /serviceoffers\.obol\.org/, "the shared CustomResourceDefinitions stay");
    const offers = await cluster.kubectl(["get", "serviceoffers", "--all-namespaces", "-o", "name"]);
    assert.equal(offers.trim(), "", "no ServiceOffer of the destroyed stack is left");
    await waitFor(
      "the buyer's volume to be released and deleted",
      async () => !(await cluster.kubectl(["get", "pv", "-o", "json"])).includes(`"namespace": "${ns}"`),
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    for (const name of EXPECTED_DEPLOYMENTS) {
      await cluster.kubectl(["-n", ns, "rollout", "status", `deployment/${name}`, "--timeout=300s"]);
    }
  });
});
