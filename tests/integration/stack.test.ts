import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { parse as parseYaml } from "yaml";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../harness/anvil";
import { at, defined } from "../harness/assertions";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { deployIdentityRegistry } from "../harness/identityRegistry";
import {
  createLedgerVolume,
  deploymentAvailability,
  kubeconfigModeConfig,
  kubeGet,
  programStack,
  serviceOfferNames,
  TEST_BUYER_KEY,
} from "../harness/project";
import { opsRecorder, outputCollector, storedStateText } from "../harness/pulumi";

const EXPECTED_DEPLOYMENTS = ["cloudflared", "litellm", "obol-controller", "x402-buyer", "x402-gateway"];

async function assertStackHealthy(
  target: { server: string; token: string },
  namespace: string,
  offers: string[],
) {
  const deployments = await deploymentAvailability(target, namespace);
  assert.deepEqual(Object.keys(deployments).sort(), EXPECTED_DEPLOYMENTS);
  for (const [name, available] of Object.entries(deployments)) assert.ok(available, `${name} is Available`);
  assert.deepEqual(await serviceOfferNames(target, namespace), offers);
}

describe("the Pulumi program against a real control plane", function () {
  this.timeout(15 * 60_000);

  describe("kubeconfig mode with Pulumi.dev.yaml's two offers", () => {
    const namespace = `obol-kc-${process.pid}`;
    const dir = scratchDir("kubeconfig-mode");
    let stack: Stack;
    let target: { server: string; token: string };
    const log = outputCollector();
    /** Pulumi.dev.yaml's two offers, as the stack starts. */
    let baseOffers: string;
    /**
     * Brings the stack up with the base config (both offers at their first prices). Every test
     * starts with it, so each passes alone and in any order; when the stack is already there,
     * the up changes nothing.
     */
    const upAtBase = async () => {
      await stack.setConfig("obol-stack:offers", { value: baseOffers });
      const up = await stack.up({ onOutput: log.onOutput });
      assert.equal(up.summary.result, "succeeded", log.text());
      return up;
    };

    before(async () => {
      const cluster = await sharedControlPlane();
      target = cluster;
      stack = await programStack({
        dir,
        stackName: "kc",
        config: kubeconfigModeConfig(cluster, namespace),
      });
      baseOffers = (await stack.getConfig("obol-stack:offers")).value;
      await createLedgerVolume(cluster, `ledger-${process.pid}`);
    });

    after(async () => {
      if (stack) await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    });

    it("(a) comes up: every Deployment Available, both ServiceOffers exist", async () => {
      const up = await upAtBase();
      await assertStackHealthy(target, namespace, ["llama", "weather"]);
      assert.equal(
        defined(up.outputs.offerEndpoints, "output offerEndpoints").value.weather,
        "/services/weather",
      );
      const purchase = await kubeGet<{ spec: { payment: { network: string; decimals: number } } }>(
        target,
        `/apis/obol.org/v1alpha1/namespaces/${namespace}/purchaserequests/remote-llama`,
      );
      assert.deepEqual(purchase.body.spec.payment, {
        network: "eip155:84532",
        decimals: 6,
        maxPrice: "0.002",
      });
      const buyer = await kubeGet<{
        spec: {
          strategy: { type: string };
          template: { spec: { volumes: { persistentVolumeClaim?: { claimName: string } }[] } };
        };
      }>(target, `/apis/apps/v1/namespaces/${namespace}/deployments/x402-buyer`);
      assert.equal(buyer.body.spec.strategy.type, "Recreate", "one writer of the spend ledger at a time");
      assert.ok(
        buyer.body.spec.template.spec.volumes.some(
          (v) => v.persistentVolumeClaim?.claimName === "x402-buyer-data",
        ),
      );
      // Quick tunnel, no public origin: the controller follows the URL cloudflared reports.
      const controller = await kubeGet<{
        spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
      }>(target, `/apis/apps/v1/namespaces/${namespace}/deployments/obol-controller`);
      const env = at(controller.body.spec.template.spec.containers, 0).env ?? [];
      assert.equal(
        env.find((e) => e.name === "QUICK_TUNNEL_METRICS_URL")?.value,
        `http://cloudflared-metrics.${namespace}.svc:2000`,
      );
      assert.ok(!env.some((e) => e.name === "PUBLIC_BASE_URL"));
      assert.match(
        defined(up.outputs.gatewayService, "output gatewayService").value,
        /^http:\/\/x402-gateway\./,
      );
      assert.match(defined(up.outputs.liteLLMService, "output liteLLMService").value, /^http:\/\/litellm\./);
    });

    it("(b) previews no changes right after up", async () => {
      await upAtBase();
      const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
      assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
    });

    it("(f) keeps no secret in plaintext in the state", async () => {
      await upAtBase();
      const cluster = await sharedControlPlane();
      const state = storedStateText(path.join(dir, "state"));
      const secret = await kubeGet<{ data: Record<string, string> }>(
        target,
        `/api/v1/namespaces/${namespace}/secrets/litellm-secrets`,
      );
      const masterKey = Buffer.from(
        defined(secret.body.data.LITELLM_MASTER_KEY, "LITELLM_MASTER_KEY"),
        "base64",
      ).toString();
      assert.match(masterKey, /^sk-[0-9a-f]{48}$/);
      const where = (needle: string) => {
        const at = state.indexOf(needle);
        return at < 0 ? "" : state.slice(Math.max(0, at - 600), at + 100);
      };
      assert.equal(where(masterKey), "", "the generated LiteLLM master key is encrypted in state");
      assert.equal(where(cluster.token), "", "the kubeconfig's bearer token is encrypted in state");
      assert.equal(where(TEST_BUYER_KEY.slice(2)), "", "the buyer's wallet key is encrypted in state");
      assert.match(state, /"ciphertext":/, "state does hold secrets, as ciphertext");
      const configMaps = await kubeGet<{ items: { data?: Record<string, string> }[] }>(
        target,
        `/api/v1/namespaces/${namespace}/configmaps`,
      );
      assert.ok(!JSON.stringify(configMaps.body).includes(masterKey), "no ConfigMap holds the master key");
    });

    it("(d) a price change updates only that ServiceOffer", async () => {
      await upAtBase();
      const offers = JSON.parse((await stack.getConfig("obol-stack:offers")).value);
      offers[1].payment.price.perRequest = "0.002";
      await stack.setConfig("obol-stack:offers", { value: JSON.stringify(offers) });
      const rec = opsRecorder();
      const up = await stack.up({ onOutput: log.onOutput, onEvent: rec.onEvent });
      assert.equal(up.summary.result, "succeeded", log.text());
      assert.deepEqual(rec.ops, [
        // Children are named from their component (offer-weather); the object is still "weather".
        { op: "update", type: "kubernetes:obol.org/v1alpha1:ServiceOffer", name: "offer-weather" },
      ]);
      const so = await kubeGet<{ spec: { payment: { price: { perRequest: string } } } }>(
        target,
        `/apis/obol.org/v1alpha1/namespaces/${namespace}/serviceoffers/weather`,
      );
      assert.equal(so.body.spec.payment.price.perRequest, "0.002");
    });

    it("(d) removing an offer deletes only its resources", async () => {
      await upAtBase();
      const offers = JSON.parse((await stack.getConfig("obol-stack:offers")).value);
      await stack.setConfig("obol-stack:offers", { value: JSON.stringify([offers[0]]) });
      const rec = opsRecorder();
      const up = await stack.up({ onOutput: log.onOutput, onEvent: rec.onEvent });
      assert.equal(up.summary.result, "succeeded", log.text());
      assert.deepEqual(rec.ops.map((o) => `${o.op} ${o.type} ${o.name}`).sort(), [
        "delete kubernetes:obol.org/v1alpha1:ServiceOffer offer-weather",
        "delete obol:index:Offer offer-weather",
      ]);
      assert.deepEqual(await serviceOfferNames(target, namespace), ["llama"]);
    });
  });

  describe("(e) bad configs fail before anything is created", () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        "a bad payTo",
        {
          "obol-stack:offers": JSON.stringify([
            {
              name: "x",
              upstream: { url: "http://a" },
              payment: { network: "base-sepolia", payTo: "0x12", price: { perRequest: "1" } },
            },
          ]),
        },
        /offers\[0\]\.payment\.payTo/,
      ],
      [
        "a zero price",
        {
          "obol-stack:offers": JSON.stringify([
            {
              name: "x",
              upstream: { url: "http://a" },
              payment: {
                network: "base-sepolia",
                payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "0" },
              },
            },
          ]),
        },
        /greater than 0/,
      ],
      [
        "an unknown chain",
        {
          "obol-stack:offers": JSON.stringify([
            {
              name: "x",
              upstream: { url: "http://a" },
              payment: {
                network: "base-goerli",
                payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "1" },
              },
            },
          ]),
        },
        /unknown network "base-goerli"/,
      ],
      [
        "a bad route price",
        {
          "obol-stack:offers": JSON.stringify([
            {
              name: "x",
              upstream: { url: "http://a" },
              payment: {
                network: "base-sepolia",
                payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "1" },
              },
              routes: [{ path: "/premium", price: { perRequest: "0.0000001" } }],
            },
          ]),
        },
        /offers\[0\]\.routes\[0\]\.price\.perRequest/,
      ],
      [
        "a reserved path",
        {
          "obol-stack:offers": JSON.stringify([
            {
              name: "x",
              path: "/.well-known/x",
              upstream: { url: "http://a" },
              payment: {
                network: "base-sepolia",
                payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "1" },
              },
            },
          ]),
        },
        /reserved/,
      ],
      [
        "a k3d name over 32 characters",
        { "obol-stack:cluster": JSON.stringify({ name: "obol-stack-post490-buy-external-bob" }) },
        /at most 32/,
      ],
      [
        "a plaintext kubeconfig",
        {
          "obol-stack:cluster": JSON.stringify({ mode: "kubeconfig" }),
          "obol-stack:kubeconfig": "apiVersion: v1",
        },
        /plaintext/,
      ],
    ];
    for (const [what, config, message] of cases) {
      it(what, async () => {
        const stack = await programStack({
          dir: scratchDir(`bad-config-${what}`),
          stackName: "bad",
          fromDevStack: false,
          config: Object.fromEntries(Object.entries(config).map(([k, v]) => [k, { value: v }])),
        });
        const log = outputCollector();
        await assert.rejects(stack.up({ onOutput: log.onOutput }), (err: Error) => {
          assert.match(`${err.message}\n${log.text()}`, message);
          return true;
        });
        const state = await stack.exportStack();
        const resources = (state.deployment as { resources?: { type: string }[] }).resources ?? [];
        assert.deepEqual(
          resources.map((r) => r.type).filter((t) => t !== "pulumi:pulumi:Stack"),
          [],
          "nothing was created",
        );
      });
    }
  });

  describe("(c) k3d mode through the stand-in, and resume after the cluster is deleted", () => {
    let stack: Stack;
    let k3dHome: string;
    let anvil: Anvil;
    // The ERC-8004 signer; its nonce counts every transaction the stack sends.
    const signer = privateKeyToAccount(ANVIL_KEYS[1]);
    const nonce = () =>
      createPublicClient({ transport: http(anvil.rpcUrl) }).getTransactionCount({ address: signer.address });
    const agentIdentity = async (t: { server: string; token: string }) =>
      (
        await kubeGet<{ spec: { registrations: { network: string; agentId: string }[] } }>(
          t,
          "/apis/obol.org/v1alpha1/namespaces/obol/agentidentities/default",
        )
      ).body.spec.registrations;
    const log = outputCollector();
    const standinBin = path.resolve(__dirname, "../harness/bin");
    const k3d = (...args: string[]) =>
      execFileSync(path.join(standinBin, "k3d"), args, {
        encoding: "utf8",
        env: { ...process.env, K3D_STANDIN_HOME: k3dHome },
      });
    const target = () => {
      const kubeconfig = parseYaml(k3d("kubeconfig", "get", "obol-itest"));
      return {
        server: kubeconfig.clusters[0].cluster.server as string,
        token: kubeconfig.users[0].user.token as string,
      };
    };

    before(async () => {
      const dir = scratchDir("k3d-mode");
      k3dHome = path.join(dir, "k3d");
      // A chain with the ERC-8004 registry, so the resume also proves the identity is reused.
      anvil = await startAnvil({ logDir: path.join(dir, "logs"), chainId: 84532 });
      const registry = await deployIdentityRegistry(anvil.rpcUrl);
      stack = await programStack({
        dir,
        stackName: "k3d",
        env: { K3D_STANDIN_HOME: k3dHome, PATH: `${standinBin}${path.delimiter}${process.env.PATH}` },
        config: {
          "obol-stack:cluster": { value: JSON.stringify({ mode: "k3d", name: "obol-itest" }) },
          "obol-stack:publicBaseUrl": { value: "https://seller.example.com" },
          "obol-stack:identity": {
            value: JSON.stringify({
              register: true,
              name: "Resume test seller",
              rpcUrls: { "base-sepolia": anvil.rpcUrl },
              registries: { "base-sepolia": registry },
            }),
          },
          "obol-stack:identitySignerKey": { value: ANVIL_KEYS[1], secret: true },
        },
      });
    });

    after(async () => {
      if (stack) await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
      if (k3dHome && fs.existsSync(path.join(k3dHome, "clusters", "obol-itest")))
        k3d("cluster", "delete", "obol-itest");
    });

    it("creates the cluster with k3d and brings the full stack up on it", async () => {
      const up = await stack.up({ onOutput: log.onOutput });
      assert.equal(up.summary.result, "succeeded", log.text());
      const calls = fs.readFileSync(path.join(k3dHome, "calls.log"), "utf8");
      assert.match(calls, /\["cluster","create","obol-itest","--servers","1","--agents","0","--wait"/);
      // The runtime image is built from this checkout and imported into the cluster.
      const built = fs.readFileSync(path.join(k3dHome, "docker.log"), "utf8");
      const tag = /--tag (obol-stack\/runtime:src-[0-9a-f]{12})/.exec(built)?.[1];
      assert.ok(tag, built);
      assert.match(
        calls,
        new RegExp(`\\["image","import","${tag.replace("/", "\\/")}","--cluster","obol-itest"\\]`),
      );
      const gateway = await kubeGet<{ spec: { template: { spec: { containers: { image: string }[] } } } }>(
        target(),
        "/apis/apps/v1/namespaces/obol/deployments/x402-gateway",
      );
      assert.equal(at(gateway.body.spec.template.spec.containers, 0).image, tag);
      await assertStackHealthy(target(), "obol", ["llama", "weather"]);
      // One agent minted on the offers' chain, and published in the AgentIdentity.
      const agentId = defined(up.outputs.agentIds, "output agentIds").value["eip155:84532"];
      assert.match(agentId, /^[0-9]+$/);
      assert.equal(await nonce(), 1, "exactly one transaction: the mint");
      assert.deepEqual(
        (await agentIdentity(target())).map((r) => [r.network, r.agentId]),
        [["eip155:84532", agentId]],
      );
      const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
      assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
    });

    it("recreates everything with one `up` after the cluster is deleted out of band", async () => {
      // Alone (or first), bring the stack up here: the resume needs a stack to resume.
      if (!(await stack.outputs()).agentIds) {
        const first = await stack.up({ onOutput: log.onOutput });
        assert.equal(first.summary.result, "succeeded", log.text());
      }
      const before = target();
      k3d("cluster", "delete", "obol-itest"); // stops the control plane and wipes its data
      assert.ok(!fs.existsSync(path.join(k3dHome, "clusters", "obol-itest")));

      const agentIdBefore = defined((await stack.outputs()).agentIds, "output agentIds").value[
        "eip155:84532"
      ];
      const up = await stack.up({ onOutput: log.onOutput });
      assert.equal(up.summary.result, "succeeded", log.text());
      const after = target();
      assert.equal(
        defined(up.outputs.agentIds, "output agentIds").value["eip155:84532"],
        agentIdBefore,
        "the same agent, reused",
      );
      assert.equal(await nonce(), 1, "no new mint (the signer sent nothing)");
      assert.deepEqual(
        (await agentIdentity(after)).map((r) => [r.network, r.agentId]),
        [["eip155:84532", agentIdBefore]],
      );
      assert.notEqual(after.token, before.token, "a new cluster, not the old one");
      const imports =
        fs.readFileSync(path.join(k3dHome, "calls.log"), "utf8").match(/"image","import"/g) ?? [];
      assert.equal(imports.length, 2, "the runtime image was imported again into the new cluster");
      await assertStackHealthy(after, "obol", ["llama", "weather"]);
      const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
      assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
    });
  });
});
