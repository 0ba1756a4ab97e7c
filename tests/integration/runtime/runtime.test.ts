/**
 * The runtime's non-payment half against the real control plane: the controller and the gateway
 * run as child processes, upstreams are real HTTP servers on loopback.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { type DiscoveryExtension, validateDiscoveryExtension } from "@x402/extensions/bazaar";
import Ajv2020 from "ajv/dist/2020";
import { chromium, type Locator, type Page } from "playwright-core";
import { SERVICES_JSON_SCHEMA } from "../../../controller/gateway/catalog/servicesJson";
import { defined } from "../../harness/assertions";
import type { ControlPlane } from "../../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../../harness/env";
import { freePort, type ManagedProcess, tail, waitFor } from "../../harness/processes";
import {
  api,
  BASE_SEPOLIA,
  condition,
  createNamespace,
  createObject,
  deleteObject,
  getObject,
  httpGet,
  httpGetWithHost,
  installCrds,
  mergePatch,
  offerSpec,
  startRuntime,
  startSupportedOnlyFacilitator,
  Upstream,
  USDC,
  waitForCondition,
  waitForHttp,
} from "./helpers";
import { OPENAPI_31_STRUCTURE_SCHEMA, REGISTRATION_V1_SCHEMA } from "./schemas";
import { FakeSeller } from "./seller";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = path.resolve(__dirname, "../../../artifacts");

/** The text a person sees (layout-aware, unlike textContent). */
function visibleText(locator: Locator): Promise<string> {
  return locator.innerText();
}

/** Runs `fn` in a fresh headless Chromium page of this size; collects script errors. */
async function withChromium(
  viewport: { width: number; height: number },
  fn: (page: Page, errors: string[]) => Promise<void>,
): Promise<void> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "obol-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport,
  });
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await fn(page, errors);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

/**
 * Every example command shows each of its lines on one screen line: none is wrapped mid-word,
 * and no option (`-d`) is left alone at the end of a line.
 */
async function assertCurlUnbroken(page: Page): Promise<void> {
  // Browser code as a string: the tests compile without the DOM library.
  const blocks = (await page.evaluate(
    `[...document.querySelectorAll(".try pre code")].map((code) => ({ text: code.textContent, height: code.getBoundingClientRect().height, lineHeight: parseFloat(getComputedStyle(code).lineHeight) }))`,
  )) as { text: string; height: number; lineHeight: number }[];
  assert.ok(blocks.length > 0);
  for (const b of blocks) {
    const written = b.text.split("\n");
    assert.equal(
      Math.round(b.height / b.lineHeight),
      written.length,
      `shown on ${written.length} lines: ${b.text}`,
    );
    for (const l of written) assert.doesNotMatch(l, /\s-d$/, `an option alone at a line's end: ${b.text}`);
  }
}

const SO = "serviceoffers";

/** The line of `text` that starts (after indentation) with `- <prefix>`. */
function line2(text: string, prefix: string): string {
  return text.split("\n").find((l) => l.trim().startsWith(`- ${prefix}`)) ?? "";
}

/** The AgentIdentity the registration and storefront tests publish. */
const IDENTITY = {
  name: "Echo Agent",
  description: "Echo <as> a service",
  image: "https://example.com/icon.png",
  registrations: [
    { network: "eip155:84532", agentId: "42", registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e" },
  ],
};

/**
 * Every test runs against a namespace, an upstream, a gateway and a controller of its own, and
 * sets up what it needs itself: each passes alone (`--grep`) and in any order.
 */
describe("runtime: controller and gateway against the control plane", () => {
  let cp: ControlPlane;
  let ns: string;
  let logDir: string;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  let publicUrl: string;
  let internalUrl: string;
  let upstream: Upstream;
  let controllerArgs: string[];
  let facilitator: { proc: ManagedProcess; url: string };
  let run = 0;

  const logs = () => [controller, gateway].filter(Boolean);

  before(async () => {
    cp = await sharedControlPlane();
    await installCrds(cp);
    // The gateway reads its /supported; unpaid requests never reach verify or settle.
    facilitator = await startSupportedOnlyFacilitator({
      logDir: path.join(scratchDir("runtime-facilitator"), "logs"),
      networks: [BASE_SEPOLIA],
    });
  });

  after(async () => {
    await facilitator?.proc.stop();
  });

  beforeEach(async () => {
    run++;
    ns = `rt-${process.pid}-${run}`;
    await createNamespace(cp, ns);
    logDir = path.join(scratchDir(`runtime-${run}`), "logs");
    upstream = new Upstream();
    await upstream.start();
    const [port, internalPort, controllerPort] = [await freePort(), await freePort(), await freePort()];
    publicUrl = `http://127.0.0.1:${port}`;
    internalUrl = `http://127.0.0.1:${internalPort}`;
    gateway = startRuntime(
      "gateway",
      "gateway",
      ["--kubeconfig", cp.kubeconfigPath, "--namespace", ns, "--port", String(port), "--host", "127.0.0.1"],
      logDir,
      {
        INTERNAL_PORT: String(internalPort),
        INTERNAL_HOST: "127.0.0.1",
        FACILITATOR_URL: facilitator.url,
      },
    );
    controllerArgs = [
      "--kubeconfig",
      cp.kubeconfigPath,
      "--namespace",
      ns,
      "--gateway-internal-url",
      internalUrl,
      "--port",
      String(controllerPort),
      "--probe-interval-ms",
      "1000",
      "--max-backoff-ms",
      "2000",
      "--probe-timeout-ms",
      "1500",
      "--lease-duration-seconds",
      "4",
      "--lease-retry-ms",
      "500",
    ];
    controller = startRuntime("controller", "controller", controllerArgs, logDir);
    await waitForHttp("gateway /readyz", `${publicUrl}/readyz`, gateway);
    await waitForHttp("controller /healthz", `http://127.0.0.1:${controllerPort}/healthz`, controller);
  });

  afterEach(async () => {
    await controller?.stop();
    await gateway?.stop();
    await upstream?.stop();
  });

  /** Creates an offer on this test's upstream and waits until it is Ready and routed. */
  async function readyOffer(name: string, overrides: Record<string, unknown> = {}): Promise<void> {
    const spec = offerSpec(upstream.port, overrides);
    await createObject(cp, ns, SO, "ServiceOffer", name, spec);
    await waitForCondition(cp, ns, SO, name, { type: "Ready", status: "True" }, { logs: logs() });
    await waitFor(
      `the gateway to route ${name}`,
      async () => (await httpGet(`${publicUrl}${String(spec.path)}/free/x`)).status === 200,
      { timeoutMs: 5_000 },
    );
  }

  it("brings an offer with a healthy upstream to Ready and serves it through the gateway", async () => {
    await createObject(cp, ns, SO, "ServiceOffer", "echo", offerSpec(upstream.port));
    const offer = await waitForCondition(
      cp,
      ns,
      SO,
      "echo",
      { type: "Ready", status: "True", reason: "Ready" },
      { logs: logs() },
    );
    assert.equal(condition(offer, "UpstreamHealthy")?.reason, "Healthy");
    assert.equal(condition(offer, "PaymentGateReady")?.reason, "RouteHeld");
    assert.equal(condition(offer, "Registered")?.status, "False", "no identity yet, and Ready regardless");
    assert.equal(offer.status?.observedGeneration, offer.metadata.generation);
    assert.equal(condition(offer, "Ready")?.observedGeneration, offer.metadata.generation);
    assert.equal(offer.status?.endpoint, "/services/echo");
    const probe = upstream.requests.find((r) => r.url === "/health");
    assert.equal(probe?.headers["user-agent"], "obol-stack-controller/0.1", "health probes name themselves");

    await waitFor(
      "the gateway to route /services/echo",
      async () => (await httpGet(`${publicUrl}/services/echo/free/hello?x=1`)).status === 200,
      {
        timeoutMs: 5_000,
      },
    );
    const free = await httpGet(`${publicUrl}/services/echo/free/hello?x=1`, {
      headers: { "user-agent": "test-agent/1" },
    });
    const echoed = JSON.parse(free.text);
    assert.equal(echoed.url, "/free/hello?x=1", "the offer prefix is stripped, the query kept");
    assert.equal(echoed.userAgent, "test-agent/1");
    assert.equal(echoed.forwardedPrefix, "/services/echo");
    assert.match(String(echoed.forwardedFor), /127\.0\.0\.1/);

    const paid = await httpGet(`${publicUrl}/services/echo/anything`);
    assert.equal(paid.status, 402, "paid routes go through the x402 payment gate");
    assert.ok(paid.headers.get("payment-required"), "the v2 requirements travel in PAYMENT-REQUIRED");
    const v1 = JSON.parse(paid.text);
    assert.equal(v1.x402Version, 1);
    assert.equal(v1.accepts[0].network, "base-sepolia", "the body speaks v1, with the legacy network name");
    assert.ok(
      !upstream.requests.some((r) => r.url === "/anything"),
      "nothing was proxied for an unpaid request",
    );

    const services = JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text);
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(SERVICES_JSON_SCHEMA);
    assert.ok(validate(services), JSON.stringify(validate.errors));
    assert.deepEqual(
      services.services.map((s: { name: string }) => s.name),
      ["echo"],
    );
    assert.equal(
      services.services[0].endpoint,
      `${publicUrl}/services/echo`,
      "base URL from the Host header",
    );
    assert.equal(services.services[0].priceAtomicUnits, "1000");
    const skill = (await httpGet(`${publicUrl}/skill.md`)).text;
    assert.match(skill, /\| echo \| http \|/);
    assert.match(skill, /0\.001 USDC per request/);
    const home = await httpGet(`${publicUrl}/`);
    assert.match(home.headers.get("content-type") ?? "", /text\/html/);
    assert.match(home.text, /data-offer="echo"/);
  });

  it("fails closed: unknown paths 404, internal endpoints only on the internal port", async () => {
    await readyOffer("echo");
    assert.equal((await httpGet(`${publicUrl}/internal/routes`)).status, 404);
    assert.equal((await httpGet(`${publicUrl}/services/nope`)).status, 404);
    assert.equal((await httpGet(`${publicUrl}/services/echo/../../internal/routes`)).status, 404);
    assert.equal((await httpGet(`${publicUrl}/metrics`)).status, 404);
    const report = JSON.parse((await httpGet(`${internalUrl}/internal/routes`)).text);
    assert.equal(report.synced, true);
    assert.deepEqual(
      report.routes.map((r: { name: string; public: boolean }) => [r.name, r.public]),
      [["echo", true]],
    );
  });

  it("takes an offer out of routing and catalogs while its upstream is down, and back when it returns", async () => {
    await readyOffer("echo");
    await upstream.stop();
    const down = await waitForCondition(
      cp,
      ns,
      SO,
      "echo",
      { type: "UpstreamHealthy", status: "False", reason: "Unreachable" },
      { logs: logs() },
    );
    assert.equal(condition(down, "Ready")?.status, "False");
    assert.equal(condition(down, "Ready")?.reason, "Unreachable");
    await waitFor(
      "the gateway to stop routing echo",
      async () => (await httpGet(`${publicUrl}/services/echo/free/x`)).status === 404,
      {
        timeoutMs: 3_000,
      },
    );
    const services = JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text);
    assert.deepEqual(services.services, []);
    assert.doesNotMatch((await httpGet(`${publicUrl}/skill.md`)).text, /\| echo \|/);
    assert.doesNotMatch((await httpGet(`${publicUrl}/`)).text, /data-offer="echo"/);
    const tombstone = JSON.parse((await httpGet(`${publicUrl}/.well-known/agent-registration.json`)).text);
    assert.equal(tombstone.active, false);
    assert.equal(tombstone.x402Support, false);

    await upstream.start();
    await waitForCondition(cp, ns, SO, "echo", { type: "Ready", status: "True" }, { logs: logs() });
    await waitFor(
      "the gateway to route echo again",
      async () => (await httpGet(`${publicUrl}/services/echo/free/x`)).status === 200,
      {
        timeoutMs: 3_000,
      },
    );
    const back = JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text);
    assert.deepEqual(
      back.services.map((s: { name: string }) => s.name),
      ["echo"],
    );
  });

  it("gives a later offer on a taken path PathConflict, and hands the path over when the winner goes", async () => {
    await readyOffer("echo");
    await createObject(
      cp,
      ns,
      SO,
      "ServiceOffer",
      "echo-copy",
      offerSpec(upstream.port, { description: "second claimant" }),
    );
    const loser = await waitForCondition(
      cp,
      ns,
      SO,
      "echo-copy",
      { type: "Ready", status: "False", reason: "PathConflict" },
      { logs: logs() },
    );
    assert.match(condition(loser, "Ready")?.message ?? "", /already claimed by the older offer .*\/echo/);
    assert.equal(condition(loser, "PaymentGateReady")?.reason, "PathConflict");
    assert.equal(
      condition(await getObject(cp, ns, SO, "echo"), "Ready")?.status,
      "True",
      "the first claimant keeps its path",
    );

    await createObject(
      cp,
      ns,
      SO,
      "ServiceOffer",
      "host-copy",
      offerSpec(upstream.port, { path: "/services/host-a", hostname: "a.example.com" }),
    );
    await waitForCondition(cp, ns, SO, "host-copy", { type: "Ready", status: "True" }, { logs: logs() });
    await createObject(
      cp,
      ns,
      SO,
      "ServiceOffer",
      "host-copy-2",
      offerSpec(upstream.port, { path: "/services/host-b", hostname: "A.example.com" }),
    );
    await waitForCondition(
      cp,
      ns,
      SO,
      "host-copy-2",
      { type: "Ready", status: "False", reason: "HostnameConflict" },
      { logs: logs() },
    );
    await waitFor(
      "the gateway to serve a.example.com",
      async () => (await httpGetWithHost(`${publicUrl}/free/x`, "a.example.com")).status === 200,
      { timeoutMs: 3_000 },
    );
    const viaHost = await httpGetWithHost(`${publicUrl}/free/x`, "a.example.com");
    assert.equal(JSON.parse(viaHost.text).url, "/free/x", "a hostname offer serves its whole host");

    await createObject(
      cp,
      ns,
      SO,
      "ServiceOffer",
      "reserved",
      offerSpec(upstream.port, { path: "/api/mine" }),
    );
    await waitForCondition(
      cp,
      ns,
      SO,
      "reserved",
      { type: "Ready", status: "False", reason: "ReservedPath" },
      { logs: logs() },
    );

    await deleteObject(cp, ns, SO, "echo");
    const winner = await waitForCondition(
      cp,
      ns,
      SO,
      "echo-copy",
      { type: "Ready", status: "True" },
      { logs: logs() },
    );
    assert.equal(condition(winner, "PaymentGateReady")?.reason, "RouteHeld");
    await waitFor(
      "the gateway to serve echo-copy",
      async () =>
        JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text).services.some(
          (s: { name: string }) => s.name === "echo-copy",
        ),
      { timeoutMs: 3_000 },
    );
    for (const name of ["host-copy", "host-copy-2", "reserved"]) await deleteObject(cp, ns, SO, name);
  });

  it("summarizes published offers on the AgentIdentity and renders the ERC-8004 registration", async () => {
    // The offer that won /services/echo in the path-conflict test: the same name and path.
    await readyOffer("echo-copy");
    await createObject(cp, ns, "agentidentities", "AgentIdentity", "default", IDENTITY);
    await waitFor(
      "AgentIdentity status.publishedOffers",
      async () => {
        const id = await getObject(cp, ns, "agentidentities", "default");
        return (
          JSON.stringify(id?.status?.publishedOffers) === JSON.stringify(["echo-copy"]) &&
          id?.status?.active === true
        );
      },
      { timeoutMs: 10_000 },
    );
    await waitForCondition(
      cp,
      ns,
      SO,
      "echo-copy",
      { type: "Registered", status: "True", reason: "Registered" },
      { logs: logs() },
    );
    const doc = JSON.parse((await httpGet(`${publicUrl}/.well-known/agent-registration.json`)).text);
    assert.deepEqual(doc, {
      type: "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
      name: "Echo Agent",
      description: "Echo <as> a service",
      image: "https://example.com/icon.png",
      // The storefront, and each ready offer by name (what a buyer by agent id looks up).
      services: [
        { name: "web", endpoint: `${publicUrl}/` },
        { name: "echo-copy", endpoint: `${publicUrl}/services/echo`, type: "http" },
      ],
      x402Support: true,
      active: true,
      registrations: [
        { agentId: 42, agentRegistry: "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e" },
      ],
      supportedTrust: [],
    });
    const home = (await httpGet(`${publicUrl}/`)).text;
    assert.match(home, /<h1>Echo Agent<\/h1>/);
    assert.match(home, /Echo &lt;as&gt; a service/, "user data is escaped");
  });

  it("recovers when the controller is killed mid-reconcile and a new one starts", async () => {
    await readyOffer("echo-copy");
    upstream.slowHealthMs = 1_200;
    const seen = upstream.requests.length;
    // A new health path: the new generation's reconcile cannot use a shared (cached) answer
    // for the old one, it has to probe, and the probe is slow.
    await mergePatch(cp, ns, SO, "echo-copy", {
      spec: { description: "changed while the controller dies", upstream: { healthPath: "/health/v2" } },
    });
    await waitFor(
      "a health probe in flight",
      async () => upstream.requests.slice(seen).some((r) => r.url === "/health/v2"),
      {
        timeoutMs: 5_000,
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    process.kill(-controller.child.pid!, "SIGKILL");
    await controller.stop();
    const before = await getObject(cp, ns, SO, "echo-copy");
    upstream.slowHealthMs = 0;
    assert.notEqual(
      before?.status?.observedGeneration,
      before?.metadata.generation,
      "the first controller died before it reconciled the new generation",
    );

    controller = startRuntime("controller-2", "controller", controllerArgs, logDir);
    await waitFor(
      "the new controller to reconcile the new generation",
      async () => {
        const o = await getObject(cp, ns, SO, "echo-copy");
        return (
          o?.status?.observedGeneration === o?.metadata.generation && condition(o, "Ready")?.status === "True"
        );
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.ok(before?.metadata.generation);
    const lease = (
      await api(cp, "GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/obol-controller`)
    ).json<{
      spec: { holderIdentity: string; leaseTransitions: number };
    }>();
    assert.ok(lease.spec.leaseTransitions >= 1, "the new controller took the lease over after it expired");

    // A clean stop releases the lease at once.
    const stopped = controller;
    await stopped.stop();
    const released = (
      await api(cp, "GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/obol-controller`)
    ).json<{
      spec: { holderIdentity?: string };
    }>();
    assert.deepEqual(
      { exitCode: stopped.child.exitCode, signal: stopped.child.signalCode },
      { exitCode: 0, signal: null },
      `SIGTERM ends the controller cleanly:\n${tail(stopped.logFile)}`,
    );
    assert.equal(released.spec.holderIdentity, undefined);
  });
  it("probes PurchaseRequests: validates the seller's 402 against network, asset and max price", async () => {
    const seller = new FakeSeller();
    await seller.start();
    try {
      const pr = (endpoint: string, maxPrice: string, network = BASE_SEPOLIA) => ({
        endpoint: `http://127.0.0.1:${seller.port}${endpoint}`,
        model: "qwen3",
        payment: { network, asset: USDC.address, maxPrice },
        budget: { maxPerRequest: maxPrice },
      });
      const cases: [string, ReturnType<typeof pr>, string, string][] = [
        ["v2-ok", pr("/v2/chat", "0.002"), "True", "Validated"],
        ["v1-ok", pr("/v1/chat", "0.001"), "True", "Validated"],
        ["too-cheap", pr("/v2/chat", "0.0005"), "False", "PricingMismatch"],
        ["wrong-chain", pr("/v2/chat", "0.01", "eip155:8453"), "False", "NetworkMismatch"],
        ["free-api", pr("/free", "0.01"), "False", "NotPaymentGated"],
        [
          "nobody-home",
          { ...pr("/v2/chat", "0.01"), endpoint: `http://127.0.0.1:${await freePort()}/x` },
          "False",
          "ProbeError",
        ],
      ];
      for (const [name, spec] of cases)
        await createObject(cp, ns, "purchaserequests", "PurchaseRequest", name, spec);
      for (const [name, , status, reason] of cases) {
        const obj = await waitForCondition(
          cp,
          ns,
          "purchaserequests",
          name,
          { type: "Probed", status, reason },
          { logs: logs() },
        );
        assert.equal(condition(obj, "Ready")?.status, status, name);
        if (status === "True") assert.equal(obj.status?.probedPrice, "0.001", name);
      }
      assert.ok(seller.requests.length > 0);
      for (const r of seller.requests) assert.equal(r.userAgent, "obol-stack-controller/0.1");
      assert.ok(seller.requests.some((r) => r.method === "POST"));
    } finally {
      await seller.stop();
    }
  });

  it("serves services.json, openapi.json and agent-registration.json that validate against their schemas", async () => {
    await readyOffer("echo");
    await createObject(cp, ns, "agentidentities", "AgentIdentity", "default", IDENTITY);
    await waitFor(
      "the registration to be active",
      async () =>
        JSON.parse((await httpGet(`${publicUrl}/.well-known/agent-registration.json`)).text).active === true,
      { timeoutMs: 10_000 },
    );
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const services = JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text);
    const checkServices = ajv.compile(SERVICES_JSON_SCHEMA);
    assert.ok(checkServices(services), JSON.stringify(checkServices.errors));

    const openapi = JSON.parse((await httpGet(`${publicUrl}/openapi.json`)).text);
    const checkOpenApi = ajv.compile(OPENAPI_31_STRUCTURE_SCHEMA);
    assert.ok(checkOpenApi(openapi as unknown), JSON.stringify(checkOpenApi.errors));
    assert.equal(openapi.servers[0].url, publicUrl);
    const paid = openapi.paths["/services/echo/{subpath}"];
    assert.ok(paid?.get?.responses["402"], "paid operations document the 402");
    assert.equal(paid.get["x-payment-info"].amount, "1000");
    const free = openapi.paths["/services/echo/free/{subpath}"];
    assert.ok(free?.get, "free routes are described");
    assert.equal(free.get.responses["402"], undefined, "free routes never answer 402");
    for (const [p, item] of Object.entries<Record<string, unknown>>(openapi.paths)) {
      const params = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const op of Object.values(item) as { parameters?: { name: string; in: string }[] }[]) {
        const declared = (op.parameters ?? []).filter((x) => x.in === "path").map((x) => x.name);
        assert.deepEqual(declared.sort(), params.sort(), `path parameters of ${p} are declared`);
      }
    }

    const registration = JSON.parse((await httpGet(`${publicUrl}/.well-known/agent-registration.json`)).text);
    const checkRegistration = ajv.compile(REGISTRATION_V1_SCHEMA);
    assert.ok(checkRegistration(registration), JSON.stringify(checkRegistration.errors));
  });

  it("renders the storefront in headless Chromium with every ready offer, its price and network", async function () {
    if (!fs.existsSync(CHROMIUM)) {
      // CI installs it (.ci/run): there, a missing browser is a failure, not a skip.
      if (process.env.CI)
        throw new Error(`${CHROMIUM} is missing: .ci/run should have installed Debian's chromium`);
      console.warn(`      skipped: ${CHROMIUM} is missing; install it with \`apt-get install -y chromium\``);
      this.skip();
    }
    await readyOffer("echo-copy");
    await createObject(cp, ns, "agentidentities", "AgentIdentity", "default", IDENTITY);
    await createObject(cp, ns, SO, "ServiceOffer", "qwen-chat", {
      ...offerSpec(upstream.port, { path: "/services/qwen-chat" }),
      type: "inference",
      description: "Qwen3 0.6B chat completions, OpenAI-compatible",
      model: { name: "qwen3:0.6b", runtime: "ollama" },
      payment: { ...(offerSpec(upstream.port).payment as object), price: { perMTok: "0.25" } },
      routes: [{ path: "/v1/models", gate: "free", methods: ["GET"] }],
      listing: { category: "inference", weight: 10 },
    });
    await waitForCondition(cp, ns, SO, "qwen-chat", { type: "Ready", status: "True" }, { logs: logs() });
    await waitFor(
      "the storefront to list qwen-chat under the agent's name",
      async () => {
        const home = (await httpGet(`${publicUrl}/`)).text;
        return /data-offer="qwen-chat"/.test(home) && /<h1>Echo Agent<\/h1>/.test(home);
      },
      {
        timeoutMs: 3_000,
      },
    );

    await withChromium({ width: 1280, height: 900 }, async (page, errors) => {
      await page.goto(`${publicUrl}/`, { waitUntil: "load" });
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, "storefront.png"), fullPage: true });

      assert.equal(await page.title(), "Echo Agent");
      const cards = page.locator("article.card");
      assert.equal(await cards.count(), 2);
      assert.deepEqual(
        await page.locator("article.card h2").allInnerTexts(),
        ["qwen-chat", "echo-copy"],
        "weight orders the cards",
      );
      // A per-token offer: the visitor reads what one call costs, and the rate behind it.
      const qwen = page.locator('article[data-offer="qwen-chat"]');
      assert.equal(await visibleText(qwen.locator(".amount")), "0.00025 USDC");
      assert.equal(await visibleText(qwen.locator(".unit")), "per call");
      assert.match(
        await visibleText(qwen.locator(".rate")),
        /^Rate 0\.25 USDC per 1M tokens; each call is charged a fixed 1,000 tokens/,
      );
      assert.match(await visibleText(qwen), /qwen3:0\.6b/);
      // The testnet is labelled as one, next to the network's name.
      assert.match(await visibleText(qwen), /Network\s+Base Sepolia\s+testnet/i);
      const echo = page.locator('article[data-offer="echo-copy"]');
      assert.equal(await visibleText(echo.locator(".amount")), "0.001 USDC");
      assert.equal(await visibleText(echo.locator(".unit")), "per call");
      assert.match(
        await visibleText(echo.locator("pre")),
        new RegExp(`curl -i '${publicUrl}/services/echo/'`),
      );
      // Free routes as paths a person can use, the health check named as such; no globs.
      const free = (await echo.locator("ul.free li").allInnerTexts()).map((t) =>
        t.replace(/\s+/g, " ").trim(),
      );
      assert.deepEqual(free, [
        "/services/echo/free/ and everything below it",
        "GET /services/echo/health (health check)",
      ]);
      assert.doesNotMatch(await visibleText(page.locator("main")), /\*/, "no route globs on the page");
      // How to pay: one sentence and a link.
      const how = await visibleText(page.locator(".how"));
      assert.match(how, /^How to pay: [^.]+\.$/, `one sentence: ${how}`);
      assert.equal(await page.locator(".how a").getAttribute("href"), "https://x402.org");
      assert.match(await visibleText(page.locator(".summary")), /2 services available/);
      assert.ok(await page.locator("header h1").isVisible());
      await assertCurlUnbroken(page);
      // The icon the browser asks for is an image it can decode.
      const icon = await page.evaluate(
        `(async () => { const img = new Image(); img.src = "/favicon.ico"; await img.decode(); return [img.naturalWidth, img.naturalHeight]; })()`,
      );
      assert.deepEqual(icon, [16, 16]);
      assert.deepEqual(errors, [], "the page runs without script errors");
    });

    // A 390 px phone: nothing wider than the screen, the status dot round, the price readable.
    await withChromium({ width: 390, height: 844 }, async (page, errors) => {
      await page.goto(`${publicUrl}/`, { waitUntil: "load" });
      await page.screenshot({ path: path.join(ARTIFACTS, "storefront-mobile.png"), fullPage: true });
      const dot = await page.locator(".summary .dot").boundingBox();
      assert.ok(
        dot && Math.abs(dot.width - dot.height) < 0.5 && dot.width >= 9,
        `round dot: ${JSON.stringify(dot)}`,
      );
      const overflow = (await page.evaluate("document.documentElement.scrollWidth")) as number;
      assert.ok(overflow <= 390, `the page is ${overflow}px wide on a 390px screen`);
      const qwen = page.locator('article[data-offer="qwen-chat"]');
      assert.ok(await qwen.locator(".amount").isVisible());
      assert.equal(await visibleText(qwen.locator(".amount")), "0.00025 USDC");
      assert.match(await visibleText(qwen), /testnet/i);
      await assertCurlUnbroken(page);
      assert.deepEqual(errors, []);
    });

    // The 402 a person reads: token symbol, decimal amount and the network's name.
    const paid = await httpGet(`${publicUrl}/services/echo/x`);
    assert.equal(paid.status, 402);
    assert.match(
      JSON.parse(paid.text).message,
      /^this route costs 0\.001 USDC on Base Sepolia \(testnet\) per request; pay with an x402 client/,
    );
    const favicon = await fetch(`${publicUrl}/favicon.ico`);
    assert.equal(favicon.status, 200);
    assert.equal(favicon.headers.get("content-type"), "image/x-icon");
  });
  it("answers a browser's 402 with a paywall page naming the price and network; API clients still get JSON", async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI)
        throw new Error(`${CHROMIUM} is missing: .ci/run should have installed Debian's chromium`);
      this.skip();
    }
    await readyOffer("echo-paywall", {
      payments: [
        {
          ...(offerSpec(upstream.port).payment as object),
          asset: {
            ...USDC,
            address: "0x0000000000000000000000000000000000C0FFEE",
            symbol: "ALT",
            decimals: 18,
          },
          price: { perRequest: "0.5" },
        },
      ],
    });
    const url = `${publicUrl}/services/echo/paid/thing`;
    await withChromium({ width: 1280, height: 900 }, async (page, errors) => {
      const response = await page.goto(url, { waitUntil: "load" });
      assert.equal(response?.status(), 402);
      assert.ok(response?.headers()["payment-required"], "the browser's 402 keeps PAYMENT-REQUIRED");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, "paywall.png"), fullPage: true });
      assert.equal(await visibleText(page.locator("h1")), "Payment required");
      assert.equal(
        await visibleText(page.locator(".price")),
        "This costs 0.001 USDC on Base Sepolia (testnet) per request.",
      );
      assert.equal(
        await visibleText(page.locator(".also")),
        "Also accepted: 0.5 ALT on Base Sepolia (testnet).",
      );
      assert.match(
        await visibleText(page.locator("main")),
        /How to pay: request .*\/services\/echo\/paid\/thing with an x402 client/,
      );
      assert.deepEqual(errors, []);
    });
    // An API client (no text/html, or no browser user agent) gets the JSON and the header.
    for (const headers of [
      { accept: "application/json" },
      { accept: "text/html", "user-agent": "curl/8.5.0" },
    ]) {
      const api402 = await httpGet(url, { headers });
      assert.equal(api402.status, 402);
      assert.match(api402.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(JSON.parse(api402.text).x402Version, 1);
      const terms = decodePaymentRequiredHeader(api402.headers.get("payment-required") ?? "");
      assert.deepEqual(
        terms.accepts.map((a) => [a.network, a.amount]),
        [
          ["eip155:84532", "1000"],
          ["eip155:84532", "500000000000000000"],
        ],
      );
    }
  });

  it("lets a crawler discover the paid resources at /.well-known/x402, each 402 describing its input and output (bazaar)", async () => {
    await readyOffer("echo-disc", {
      routes: [
        { path: "/free/*", gate: "free" },
        { path: "/health", gate: "free", methods: ["GET"] },
        { path: "/v1/lookup", gate: "paid", methods: ["GET"] },
      ],
    });
    await createObject(cp, ns, SO, "ServiceOffer", "qwen-disc", {
      ...offerSpec(upstream.port, { path: "/services/qwen-disc", routes: [] }),
      type: "inference",
      model: { name: "qwen3:0.6b", runtime: "ollama" },
    });
    await waitForCondition(cp, ns, SO, "qwen-disc", { type: "Ready", status: "True" }, { logs: logs() });
    let doc: { version: number; resources: string[]; instructions: string } | undefined;
    let contentType = "";
    await waitFor(
      "both offers in /.well-known/x402",
      async () => {
        const r = await httpGet(`${publicUrl}/.well-known/x402`);
        contentType = r.headers.get("content-type") ?? "";
        doc = r.status === 200 ? JSON.parse(r.text) : undefined;
        return doc?.resources.length === 2;
      },
      { timeoutMs: 10_000 },
    );
    const found = defined(doc, "the discovery document");
    assert.match(contentType, /^application\/json/);
    assert.equal(found.version, 1);
    assert.deepEqual([...found.resources].sort(), [
      `${publicUrl}/services/echo/v1/lookup`,
      `${publicUrl}/services/qwen-disc/v1/chat/completions`,
    ]);
    assert.match(found.instructions, /402/);

    // Each listed resource, called without paying, answers 402 whose bazaar extension passes
    // @x402/extensions' own validator and names the method and the input.
    const bazaarOf = async (url: string, init: RequestInit) => {
      const r = await httpGet(url, init);
      assert.equal(r.status, 402, url);
      const terms = decodePaymentRequiredHeader(r.headers.get("payment-required") ?? "");
      const bazaar = terms.extensions?.bazaar as DiscoveryExtension | undefined;
      assert.ok(bazaar, `${url}: the 402 carries extensions.bazaar`);
      const check = validateDiscoveryExtension(bazaar);
      assert.ok(check.valid, `${url}: ${JSON.stringify(check.errors)}`);
      return bazaar;
    };
    const lookup = await bazaarOf(`${publicUrl}/services/echo/v1/lookup`, {});
    assert.equal((lookup.info.input as { method?: string }).method, "GET");
    const chat = await bazaarOf(`${publicUrl}/services/qwen-disc/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen3:0.6b", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal((chat.info.input as { method?: string }).method, "POST");
    assert.ok("bodyType" in chat.info.input && chat.info.input.bodyType === "json");
    const inputSchema = chat.schema.properties.input.properties as { body?: { required?: string[] } };
    assert.deepEqual(inputSchema.body?.required, ["model", "messages"]);
    assert.ok(chat.info.output?.example, "the chat route documents its output");
    // Nothing was proxied: discovery costs the upstream nothing.
    assert.equal(
      upstream.requests.filter((r) => !r.url.startsWith("/health") && !r.url.startsWith("/free")).length,
      0,
    );
  });

  it("charges in the 402 exactly what services.json, openapi.json and skill.md advertise, for every price kind", async () => {
    const altAsset = {
      ...USDC,
      address: "0x0000000000000000000000000000000000C0FFEE",
      symbol: "ALT",
      decimals: 18,
    };
    const priced = [
      ["per-request", { perRequest: "0.0123" }],
      ["per-mtok", { perMTok: "0.25" }],
      ["per-mtok-rounded", { perMTok: "0.000001" }], // 1,000 tokens cost 0.000000001: rounded up to 1
    ] as const;
    for (const [name, price] of priced) {
      await createObject(cp, ns, SO, "ServiceOffer", name, {
        ...offerSpec(upstream.port, { path: `/services/${name}`, routes: [] }),
        payment: { ...(offerSpec(upstream.port).payment as object), price },
        // An alternative in another token, with the other price kind.
        payments: [
          {
            ...(offerSpec(upstream.port).payment as object),
            asset: altAsset,
            price: "perMTok" in price ? { perRequest: "0.5" } : { perMTok: "3" },
          },
        ],
      });
    }
    for (const [name] of priced)
      await waitForCondition(cp, ns, SO, name, { type: "Ready", status: "True" }, { logs: logs() });
    await waitFor(
      "the priced offers to be routed",
      async () => {
        for (const [name] of priced)
          if ((await httpGet(`${publicUrl}/services/${name}/x`)).status !== 402) return false;
        return true;
      },
      { timeoutMs: 30_000 },
    );

    const services = JSON.parse((await httpGet(`${publicUrl}/api/services.json`)).text) as {
      services: {
        name: string;
        priceAtomicUnits: string;
        payments: { priceAtomicUnits: string; asset: { address: string } }[];
      }[];
    };
    const openapi = JSON.parse((await httpGet(`${publicUrl}/openapi.json`)).text);
    const skill = (await httpGet(`${publicUrl}/skill.md`)).text;
    for (const [name] of priced) {
      const res = await httpGet(`${publicUrl}/services/${name}/x`);
      const v2 = decodePaymentRequiredHeader(res.headers.get("payment-required")!);
      const v1 = JSON.parse(res.text) as { accepts: { maxAmountRequired: string; asset: string }[] };
      const charged = v2.accepts.map((a) => a.amount);
      assert.equal(charged.length, 2);
      assert.deepEqual(
        v1.accepts.map((a) => a.maxAmountRequired),
        charged,
        `${name}: v1 and v2 ask the same`,
      );
      const entry = services.services.find((s) => s.name === name)!;
      assert.equal(entry.priceAtomicUnits, charged[0], `${name}: services.json price = the 402's amount`);
      assert.deepEqual(
        entry.payments.map((p) => p.priceAtomicUnits),
        charged,
        `${name}: services.json payments[] = the 402's accepts[]`,
      );
      assert.equal(
        openapi.paths[`/services/${name}/{subpath}`]?.get?.["x-payment-info"]?.amount ??
          openapi.paths[`/services/${name}`]?.get?.["x-payment-info"]?.amount,
        charged[0],
        `${name}: openapi.json amount = the 402's amount`,
      );
      const section = skill.slice(skill.indexOf(`### ${name}\n`));
      const payLine = section.split("\n").find((l) => l.startsWith("- Pay with:"))!;
      assert.deepEqual(
        [...payLine.matchAll(/the 402 asks `amount` ([0-9]+)/g)].map((m) => m[1]),
        charged,
        `${name}: skill.md = the 402's amounts`,
      );
    }
    assert.deepEqual(
      services.services.filter((s) => s.name.startsWith("per-mtok")).map((s) => s.priceAtomicUnits),
      ["250", "1"],
      "perMTok is charged as 1,000 tokens, rounded up",
    );
    for (const [name] of priced) await deleteObject(cp, ns, SO, name);
  });

  it("skill.md tells agents to read the fields the 402 actually carries, in v2 and v1", async () => {
    await readyOffer("echo");
    const skill = (await httpGet(`${publicUrl}/skill.md`)).text;
    const res = await httpGet(`${publicUrl}/services/echo/anything`);
    assert.equal(res.status, 402);
    const wire = {
      v2: decodePaymentRequiredHeader(res.headers.get("payment-required")!) as unknown as {
        x402Version: number;
        accepts: Record<string, unknown>[];
      },
      v1: JSON.parse(res.text) as { x402Version: number; accepts: Record<string, unknown>[] },
    };
    for (const version of ["v2", "v1"] as const) {
      const line = skill.split("\n").find((l) => l.trim().startsWith(`- x402 ${version}:`));
      assert.ok(line, `skill.md describes the ${version} form`);
      const fields = [...line.slice(line.indexOf("has:")).matchAll(/`([A-Za-z0-9]+)`/g)].map((m) => m[1]!);
      const sent = wire[version];
      assert.equal(sent.x402Version, version === "v2" ? 2 : 1);
      for (const field of fields.filter((f) => !/^(eip155|base)/.test(f)))
        assert.ok(
          field in sent.accepts[0]!,
          `skill.md names ${version} field \`${field}\`, which the 402 has`,
        );
      const price = version === "v2" ? "amount" : "maxAmountRequired";
      assert.ok(fields.includes(price), `skill.md names the ${version} price field ${price}`);
    }
    assert.match(skill, /`amount` \(v2\) or `maxAmountRequired` \(v1\)/);
    assert.match(line2(skill, "x402 v2"), /`PAYMENT-REQUIRED` header/);
    assert.match(line2(skill, "x402 v1"), /the JSON body/);
  });
});
