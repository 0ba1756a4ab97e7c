/**
 * Components name their children from their own name (components/naming.ts), as pulumi-awsx and
 * pulumi-eks do. Two things follow, both checked against the real engine and API server:
 * every component can exist twice in one stack, and a stack created while child names were
 * fixed is adopted by `up` through aliases, without a replace, create or delete.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { ANVIL_KEYS } from "../harness/anvil";
import { at } from "../harness/assertions";
import { kubeRequest } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import {
  createLedgerVolume,
  fixtureStack,
  kubeconfigModeConfig,
  kubeGet,
  programStack,
} from "../harness/project";
import { opsRecorder, outputCollector, storedStateText } from "../harness/pulumi";
import { offerSpec } from "./runtime/helpers";

interface KubeList {
  items?: { metadata: { name: string; uid: string } }[];
}

/** Names (and uids) of the objects of one kind in a namespace. */
async function objects(
  target: { server: string; token: string },
  apiPath: string,
): Promise<Record<string, string>> {
  const { body } = await kubeGet<KubeList>(target, apiPath);
  return Object.fromEntries((body.items ?? []).map((i) => [i.metadata.name, i.metadata.uid]));
}

interface ContainerEnv {
  spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
}

async function deploymentEnv(
  target: { server: string; token: string },
  namespace: string,
  name: string,
): Promise<Record<string, string | undefined>> {
  const { body } = await kubeGet<ContainerEnv>(
    target,
    `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`,
  );
  return Object.fromEntries(
    (at(body.spec.template.spec.containers, 0).env ?? []).map((e) => [e.name, e.value]),
  );
}

/** One key of a Secret, decoded. */
async function secretValue(
  target: { server: string; token: string },
  namespace: string,
  name: string,
  key: string,
): Promise<string | undefined> {
  const { body } = await kubeGet<{ data?: Record<string, string> }>(
    target,
    `/api/v1/namespaces/${namespace}/secrets/${name}`,
  );
  const value = body.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
}

/**
 * The name a child had while child names were fixed (the code before components/naming.ts), for
 * the instances program/stack.ts creates; undefined for resources that kept their name.
 */
function formerName(urn: string): string | undefined {
  const [typeChain = "", name = ""] = urn.split("::").slice(-2);
  const types = typeChain.split("$");
  const parent = types.at(-2);
  const type = types.at(-1) ?? "";
  const workloads: Record<string, string> = {
    "obol:index:Gateway": "x402-gateway",
    "obol:index:Controller": "obol-controller",
    "obol:index:Facilitator": "x402-facilitator",
    "obol:index:Buyer": "x402-buyer",
  };
  switch (parent) {
    case "obol:index:RuntimeWorkload": {
      const component = workloads[types.at(-3) ?? ""];
      return component && (name.endsWith("-internal") ? `${component}-internal` : component);
    }
    case "obol:index:Tunnel":
      return name.endsWith("-metrics") ? "cloudflared-metrics" : "cloudflared";
    case "obol:index:Platform":
      return type === "kubernetes:core/v1:Namespace" ? "namespace" : name.replace(/^platform-/, "");
    case "obol:index:AgentIdentity":
      return "agent-identity";
    case "obol:index:Offer":
      return name.replace(/^offer-/, "");
    case "obol:index:Purchase":
      return name.replace(/^purchase-/, "");
    default:
      return undefined;
  }
}

/** Replaces every string in `value` that `urns` maps (URNs as values: parent, dependencies...). */
function renameUrns(value: unknown, urns: Map<string, string>): unknown {
  if (typeof value === "string") return urns.get(value) ?? value;
  if (Array.isArray(value)) return value.map((v) => renameUrns(v, urns));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renameUrns(v, urns)]));
  return value;
}

describe("components: named from their name, so they exist twice and old stacks are adopted", function () {
  this.timeout(15 * 60_000);

  it("every component twice in one stack (two namespaces): both sets come up, a preview shows no changes", async () => {
    const cluster = await sharedControlPlane();
    const dir = scratchDir("components-twice");
    const [first, second] = [`twice-a-${process.pid}`, `twice-b-${process.pid}`];
    const log = outputCollector();
    const stack: Stack = await fixtureStack({
      fixture: "twice",
      dir,
      stackName: "twice",
      config: {
        kubeconfig: { value: cluster.kubeconfig, secret: true },
        signerKey: { value: ANVIL_KEYS[2], secret: true },
        namespaces: { value: JSON.stringify([first, second]) },
        offerSpec: { value: JSON.stringify(offerSpec(8080)) },
        purchase: {
          value: JSON.stringify({
            name: "remote",
            endpoint: "https://other-seller.example.com/services/llama",
            model: "llama3.2",
            payment: { network: "eip155:84532", decimals: 6, maxPrice: "0.002" },
            budget: { maxPerRequest: "0.002" },
          }),
        },
      },
    });
    try {
      const up = await stack.up({ onOutput: log.onOutput });
      assert.equal(up.summary.result, "succeeded", log.text());
      const tokens: (string | undefined)[] = [];
      for (const ns of [first, second]) {
        assert.deepEqual(
          Object.keys(await objects(cluster, `/apis/apps/v1/namespaces/${ns}/deployments`)).sort(),
          ["cloudflared", "litellm", "obol-controller", "x402-buyer", "x402-facilitator", "x402-gateway"],
          `the Deployments in ${ns}`,
        );
        for (const plural of ["serviceoffers", "purchaserequests", "agentidentities"]) {
          assert.equal(
            Object.keys(await objects(cluster, `/apis/obol.org/v1alpha1/namespaces/${ns}/${plural}`)).length,
            1,
            `one ${plural} in ${ns}`,
          );
        }
        // Each controller follows its own tunnel: the URL comes from the Tunnel component.
        assert.equal(
          (await deploymentEnv(cluster, ns, "obol-controller")).QUICK_TUNNEL_METRICS_URL,
          `http://cloudflared-metrics.${ns}.svc:2000`,
        );
        // RuntimeWorkload names the mounted key file itself.
        assert.equal(
          (await deploymentEnv(cluster, ns, "x402-facilitator")).SIGNER_KEY_FILE,
          "/var/run/secrets/obol/signer-key",
        );
        // The gateway holds the access token its own facilitator requires, as a mounted Secret.
        for (const name of ["x402-facilitator", "x402-gateway"])
          assert.equal(
            (await deploymentEnv(cluster, ns, name)).FACILITATOR_TOKEN_FILE,
            "/var/run/secrets/obol/facilitator-token",
            `${name} in ${ns}`,
          );
        const required = await secretValue(cluster, ns, "x402-facilitator-secrets", "facilitator-token");
        assert.match(required ?? "", /^[0-9a-f]{64}$/, `the facilitator's token in ${ns}`);
        assert.equal(await secretValue(cluster, ns, "x402-gateway-secrets", "facilitator-token"), required);
        tokens.push(required);
      }
      assert.notEqual(tokens[0], tokens[1], "each facilitator has its own token");
      const state = storedStateText(path.join(dir, "state"));
      for (const token of tokens)
        assert.ok(token && !state.includes(token), "the token is encrypted in state");
      const outputs = up.outputs;
      assert.equal(outputs.firstSet?.value.gateway, `http://x402-gateway.${first}.svc:8080`);
      assert.equal(outputs.secondSet?.value.gateway, `http://x402-gateway.${second}.svc:8080`);
      assert.equal(outputs.secondSet?.value.tunnelMetrics, `http://cloudflared-metrics.${second}.svc:2000`);

      const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
      assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
    } finally {
      await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
  });

  it("a stack from before (fixed child names) is adopted: no replace, create or delete, same objects", async () => {
    const cluster = await sharedControlPlane();
    const dir = scratchDir("components-adopt");
    const namespace = `adopt-${process.pid}`;
    const log = outputCollector();
    const stack = await programStack({
      dir,
      stackName: "adopt",
      config: {
        ...kubeconfigModeConfig(cluster, namespace),
        "obol-stack:facilitator": { value: JSON.stringify({ mode: "self", rpcUrl: "http://anvil:8545" }) },
        "obol-stack:facilitatorSignerKey": { value: ANVIL_KEYS[2], secret: true },
      },
    });
    const pv = `adopt-ledger-${process.pid}`;
    await createLedgerVolume(cluster, pv);
    try {
      const up = await stack.up({ onOutput: log.onOutput });
      assert.equal(up.summary.result, "succeeded", log.text());
      const before = {
        deployments: await objects(cluster, `/apis/apps/v1/namespaces/${namespace}/deployments`),
        services: await objects(cluster, `/api/v1/namespaces/${namespace}/services`),
        secrets: await objects(cluster, `/api/v1/namespaces/${namespace}/secrets`),
        offers: await objects(cluster, `/apis/obol.org/v1alpha1/namespaces/${namespace}/serviceoffers`),
      };

      // Rewrite the state to what the fixed-name code left: each renamed child under its former
      // URN (and every reference to it), with no aliases recorded.
      const exported = await stack.exportStack();
      const deployment = exported.deployment as { resources: { urn: string; aliases?: unknown }[] };
      const urns = new Map<string, string>();
      for (const r of deployment.resources) {
        const former = formerName(r.urn);
        if (former && !r.urn.endsWith(`::${former}`))
          urns.set(r.urn, `${r.urn.slice(0, r.urn.lastIndexOf("::"))}::${former}`);
      }
      assert.ok(urns.size >= 20, `children renamed since the fixed names: ${urns.size}`);
      const old = renameUrns(exported.deployment, urns) as typeof deployment;
      for (const r of old.resources) delete r.aliases;
      await stack.importStack({ ...exported, deployment: old });

      const rec = opsRecorder();
      const preview = await stack.preview({ onOutput: log.onOutput, onEvent: rec.onEvent });
      assert.deepEqual(rec.ops, [], log.text());
      assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
      const adopt = opsRecorder();
      const again = await stack.up({ onOutput: log.onOutput, onEvent: adopt.onEvent });
      assert.equal(again.summary.result, "succeeded", log.text());
      assert.deepEqual(adopt.ops, []);
      assert.deepEqual(
        {
          deployments: await objects(cluster, `/apis/apps/v1/namespaces/${namespace}/deployments`),
          services: await objects(cluster, `/api/v1/namespaces/${namespace}/services`),
          secrets: await objects(cluster, `/api/v1/namespaces/${namespace}/secrets`),
          offers: await objects(cluster, `/apis/obol.org/v1alpha1/namespaces/${namespace}/serviceoffers`),
        },
        before,
        "the same Kubernetes objects (names and uids): nothing was recreated",
      );
      const state = JSON.stringify((await stack.exportStack()).deployment);
      for (const [now, former] of urns) {
        assert.ok(state.includes(`"${now}"`), `${now} is the resource's URN again`);
        assert.ok(!state.includes(`"urn":"${former}"`), `${former} is gone from state`);
      }
    } finally {
      await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
      await kubeRequest(cluster.server, cluster.token, "DELETE", `/api/v1/persistentvolumes/${pv}`).catch(
        () => undefined,
      );
    }
  });
});
