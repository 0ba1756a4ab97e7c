/**
 * The program and the runtime together: `pulumi up` declares an offer (and an ERC-8004
 * registration on anvil); the controller and gateway, run as real processes against the same
 * cluster (kwok runs no containers), make it Ready, route it, list it in the catalogs, and
 * publish the on-chain registration in /.well-known/agent-registration.json.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { parseExact, registrationReadSchema } from "../../api/registration";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../harness/anvil";
import { defined } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { deployIdentityRegistry } from "../harness/identityRegistry";
import { type ManagedProcess, waitFor } from "../harness/processes";
import { programStack } from "../harness/project";
import { outputCollector } from "../harness/pulumi";
import { condition, getObject, startSellerRuntime, Upstream, waitForCondition } from "./runtime/helpers";

describe("pulumi up + the runtime: a declared offer becomes Ready, routed and published", function () {
  this.timeout(10 * 60_000);
  const namespace = `prog-${process.pid}`;
  const upstream = new Upstream();
  const log = outputCollector();
  let cp: ControlPlane;
  let anvil: Anvil;
  let registry: string;
  let stack: Stack;
  let agentId: string;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  let publicUrl: string;

  before(async () => {
    const dir = scratchDir("program-runtime");
    cp = await sharedControlPlane();
    anvil = await startAnvil({ logDir: path.join(dir, "logs"), chainId: 84532 });
    registry = await deployIdentityRegistry(anvil.rpcUrl);
    await upstream.start();
    stack = await programStack({
      dir,
      stackName: "prog",
      fromDevStack: false,
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cp.kubeconfig, secret: true },
        "obol-stack:namespace": { value: namespace },
        "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
        "obol-stack:publicBaseUrl": { value: "https://seller.example.com" },
        "obol-stack:offers": {
          value: JSON.stringify([
            {
              name: "echo",
              description: "Echoes the request",
              upstream: { url: `http://127.0.0.1:${upstream.port}`, healthPath: "/health" },
              payment: {
                network: "base-sepolia",
                payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "0.001" },
              },
              routes: [{ path: "/free/*", gate: "free" }],
              // Deleted at once on destroy: the controller releases its drain finalizer.
              drainSeconds: 0,
            },
          ]),
        },
        "obol-stack:identity": {
          value: JSON.stringify({
            register: true,
            name: "Program test seller",
            rpcUrls: { "base-sepolia": anvil.rpcUrl },
            registries: { "base-sepolia": registry },
          }),
        },
        "obol-stack:identitySignerKey": { value: ANVIL_KEYS[1], secret: true },
      },
    });
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    agentId = defined(up.outputs.agentIds, "output agentIds").value["eip155:84532"];

    const seller = await startSellerRuntime({
      cp,
      namespace,
      logDir: path.join(dir, "logs"),
      publicBaseUrl: "https://seller.example.com",
    });
    ({ gateway, controller, publicUrl } = seller);
    // The waiting belongs here, not in the first test: each test below must pass when run alone.
    await waitForCondition(
      cp,
      namespace,
      "serviceoffers",
      "echo",
      { type: "Ready", status: "True" },
      { logs: [controller, gateway] },
    );
    await waitFor(
      "the offer routed",
      async () => (await fetch(`${publicUrl}/services/echo/free/hi`)).status === 200,
      { timeoutMs: 10_000 },
    );
  });

  after(async () => {
    // Destroyed while the controller runs: it holds each offer's drain finalizer (obol.org/drain)
    // and releases it when the drain ends; stopped first, the delete would wait for it in vain.
    if (stack) await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    await Promise.all([gateway?.stop(), controller?.stop()]);
    await upstream.stop();
    await anvil?.stop();
  });

  it("reaches Ready and is served through the gateway at /services/<name>/", async () => {
    const offer = await getObject(cp, namespace, "serviceoffers", "echo");
    assert.equal(condition(offer, "Ready")?.status, "True");
    const res = await fetch(`${publicUrl}/services/echo/free/hi`);
    assert.equal(((await res.json()) as { url: string }).url, "/free/hi");
    assert.equal((await fetch(`${publicUrl}/services/echo/paid`)).status, 402);
  });

  it("is listed in services.json, skill.md and the storefront", async () => {
    const services = await (await fetch(`${publicUrl}/api/services.json`)).text();
    assert.match(services, /"echo"/);
    assert.match(await (await fetch(`${publicUrl}/skill.md`)).text(), /services\/echo/);
    assert.match(await (await fetch(`${publicUrl}/`)).text(), /Echoes the request/);
  });

  it("publishes the on-chain registration: eip155:<chainId>:<registry> with the minted agentId", async () => {
    const text = await (await fetch(`${publicUrl}/.well-known/agent-registration.json`)).text();
    // Agent ids are uint256: read them back exactly, never through a double.
    const doc = registrationReadSchema.parse(parseExact(text));
    assert.equal(doc.active, true);
    assert.equal(doc.name, "Program test seller");
    assert.deepEqual(doc.registrations, [
      { agentId: BigInt(agentId), agentRegistry: `eip155:84532:${registry}` },
    ]);
  });
});
