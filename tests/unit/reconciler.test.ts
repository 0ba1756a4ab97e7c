import * as assert from "node:assert/strict";
import { encodePaymentRequiredHeader } from "@x402/core/http";
import { setCondition } from "../../controller/reconciler/conditions";
import { EventRouter } from "../../controller/reconciler/events";
import { gatewayInternalUrl } from "../../controller/reconciler/main";
import { evaluate402, parse402 } from "../../controller/reconciler/paymentProbe";
import { Backoff, WorkQueue } from "../../controller/reconciler/queue";
import { computeOfferStatus, type OfferInputs } from "../../controller/reconciler/serviceOffer";
import { withRemovals } from "../../controller/reconciler/status";
import {
  isOfferReady,
  joinUrl,
  parseUpstreamOverrides,
  resolveClaims,
  upstreamBaseUrl,
} from "../../controller/shared/offers";
import { at } from "../harness/assertions";
import { offerObject, USDC } from "./runtimeFixtures";

const T0 = new Date("2026-01-01T00:00:00Z");
const T1 = new Date("2026-01-01T00:01:00Z");

describe("runtime: conditions", () => {
  it("keeps lastTransitionTime while the status stays, and moves it when the status flips", () => {
    const a = setCondition([], { type: "Ready", status: "False", reason: "Unhealthy" }, T0);
    const b = setCondition(a, { type: "Ready", status: "False", reason: "Unreachable", message: "down" }, T1);
    assert.equal(at(b, 0).lastTransitionTime, T0.toISOString());
    assert.equal(at(b, 0).reason, "Unreachable");
    const c = setCondition(b, { type: "Ready", status: "True", reason: "Ready" }, T1);
    assert.equal(at(c, 0).lastTransitionTime, T1.toISOString());
    assert.equal(c.length, 1);
  });

  it("sends removed status keys as null in the merge patch", () => {
    assert.deepEqual(withRemovals({ probedPrice: "1", conditions: [] }, { conditions: [] }), {
      conditions: [],
      probedPrice: null,
    });
  });
});

describe("runtime: path and hostname claims", () => {
  it("gives an overlapping path to the first claimant (creationTimestamp, then name)", () => {
    const old = offerObject("b-old", { path: "/services/x" }, { created: "2026-01-01T00:00:00Z" });
    const young = offerObject("a-young", { path: "/services/x/sub" }, { created: "2026-01-02T00:00:00Z" });
    const tieA = offerObject("tie-a", { path: "/services/t" }, { created: "2026-01-03T00:00:00Z" });
    const tieB = offerObject("tie-b", { path: "/services/t" }, { created: "2026-01-03T00:00:00Z" });
    const v = resolveClaims([young, tieB, old, tieA]);
    assert.equal(v.get("ns/b-old")?.ok, true);
    const lost = v.get("ns/a-young");
    assert.ok(lost && !lost.ok && lost.reason === "PathConflict");
    assert.match(lost.message, /ns\/b-old/);
    assert.equal(v.get("ns/tie-a")?.ok, true);
    assert.equal((v.get("ns/tie-b") as { reason: string }).reason, "PathConflict");
  });

  it("does not treat sibling prefixes as overlapping", () => {
    const v = resolveClaims([
      offerObject("a", { path: "/services/ab" }),
      offerObject("b", { path: "/services/a" }),
    ]);
    assert.equal(v.get("ns/a")?.ok, true);
    assert.equal(v.get("ns/b")?.ok, true);
  });

  it("rejects hostname reuse (case-insensitive), reserved paths and invalid specs; deleted offers claim nothing", () => {
    const first = offerObject("first", { hostname: "api.example.com" });
    const second = offerObject(
      "second",
      { hostname: "API.example.com" },
      { created: "2026-02-01T00:00:00Z" },
    );
    const reserved = offerObject("reserved", { path: "/.well-known/x" });
    const invalid = offerObject("invalid", { path: "no-slash" });
    const dying = offerObject("dying", { path: "/services/second" });
    dying.metadata!.deletionTimestamp = new Date();
    const v = resolveClaims([first, second, reserved, invalid, dying]);
    assert.equal((v.get("ns/second") as { reason: string }).reason, "HostnameConflict");
    assert.equal((v.get("ns/reserved") as { reason: string }).reason, "ReservedPath");
    assert.equal((v.get("ns/invalid") as { reason: string }).reason, "InvalidSpec");
    assert.equal(v.has("ns/dying"), false);
  });
});

describe("runtime: upstream resolution", () => {
  const spec = (upstream: Record<string, unknown>) => {
    const v = resolveClaims([offerObject("o", { upstream: { healthPath: "/health", ...upstream } })]).get(
      "ns/o",
    );
    assert.ok(v?.ok);
    return v.spec;
  };

  it("prefers upstream.url, else the Service DNS name, else fails with what to set", () => {
    assert.equal(
      (upstreamBaseUrl(spec({ url: "https://x.test/p" }), "ns", {}) as { url: URL }).url.href,
      "https://x.test/p",
    );
    assert.equal(
      (upstreamBaseUrl(spec({ service: "llm", port: 4000 }), "obol", {}) as { url: URL }).url.href,
      "http://llm.obol.svc:4000/",
    );
    assert.equal(
      (upstreamBaseUrl(spec({ service: "llm", namespace: "ai", port: 4000 }), "obol", {}) as { url: URL }).url
        .href,
      "http://llm.ai.svc:4000/",
    );
    const bad = upstreamBaseUrl(spec({}), "ns", {});
    assert.ok(!bad.ok && /url, or service and port/.test(bad.message));
    assert.ok(!upstreamBaseUrl(spec({ url: "ftp://x" }), "ns", {}).ok);
  });

  it("maps services through overrides so tests can use loopback", () => {
    const overrides = parseUpstreamOverrides('{"llm.ai": "http://127.0.0.1:1234"}');
    const r = upstreamBaseUrl(spec({ service: "llm", namespace: "ai", port: 4000 }), "obol", overrides);
    assert.equal((r as { url: URL }).url.href, "http://127.0.0.1:1234/");
    assert.throws(() => parseUpstreamOverrides("[1]"), /JSON object/);
    assert.throws(() => parseUpstreamOverrides("{nope"), /JSON object/);
  });

  it("joins a base path, a sub-path and a query", () => {
    assert.equal(joinUrl(new URL("http://h:1/base/"), "/v1/x", "?a=1").href, "http://h:1/base/v1/x?a=1");
    assert.equal(joinUrl(new URL("http://h:1"), "/health").href, "http://h:1/health");
  });
});

describe("runtime: ServiceOffer status", () => {
  const obj = offerObject("o", {}, { generation: 3 });
  const verdict = resolveClaims([obj]).get("ns/o")!;
  const held = {
    synced: true,
    paymentGate: "x402",
    routes: [
      {
        namespace: "ns",
        name: "o",
        uid: "uid-o",
        generation: 3,
        path: "/services/o",
        public: false,
        paymentGate: "x402",
      },
    ],
  };
  const inputs: OfferInputs = {
    verdict,
    upstream: { ok: true, url: "http://u/health", status: 204 },
    gateway: { ok: true, report: held },
    now: T0,
  };
  const cond = (s: ReturnType<typeof computeOfferStatus>, type: string) =>
    s.conditions?.find((c) => c.type === type);

  it("is Ready when the upstream is healthy and the gateway holds the current generation; Registered does not gate it", () => {
    const s = computeOfferStatus(obj, inputs);
    assert.equal(cond(s, "Ready")?.status, "True");
    assert.equal(cond(s, "Registered")?.status, "False");
    assert.equal(cond(s, "Registered")?.reason, "NoAgentIdentity");
    assert.equal(s.observedGeneration, 3);
    assert.equal(cond(s, "Ready")?.observedGeneration, 3);
    assert.equal(s.endpoint, "/services/o");
    assert.equal(
      computeOfferStatus(obj, { ...inputs, publicBaseUrl: "https://a.b/" }).endpoint,
      "https://a.b/services/o",
    );
  });

  it("names the first failing reason", () => {
    const unhealthy = computeOfferStatus(obj, {
      ...inputs,
      upstream: { ok: false, reason: "Unhealthy", message: "GET answered 404" },
    });
    assert.equal(cond(unhealthy, "Ready")?.reason, "Unhealthy");
    const stale = computeOfferStatus(obj, {
      ...inputs,
      gateway: { ok: true, report: { ...held, routes: [{ ...at(held.routes, 0), generation: 2 }] } },
    });
    assert.equal(cond(stale, "PaymentGateReady")?.reason, "RouteStale");
    assert.equal(cond(stale, "Ready")?.reason, "RouteStale");
    const noGateway = computeOfferStatus(obj, { ...inputs, gateway: { ok: false, message: "refused" } });
    assert.equal(cond(noGateway, "Ready")?.reason, "GatewayUnreachable");
    const registered = computeOfferStatus(obj, {
      ...inputs,
      identity: {
        spec: { name: "a", registrations: [{ network: "eip155:84532", agentId: "7", registry: "0x" }] },
      },
    });
    assert.equal(cond(registered, "Registered")?.status, "True");
  });

  it("counts an offer as ready only for the generation Ready was computed for", () => {
    assert.equal(isOfferReady(offerObject("a", {}, { ready: true, generation: 2 })), true);
    assert.equal(
      isOfferReady(offerObject("a", {}, { ready: true, generation: 2, readyGeneration: 1 })),
      false,
    );
    assert.equal(isOfferReady(offerObject("a")), false);
  });
});

describe("runtime: reading a seller's 402", () => {
  const requirement = {
    scheme: "exact",
    network: "eip155:84532" as const,
    asset: USDC.address,
    amount: "1500",
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    maxTimeoutSeconds: 60,
    extra: {},
  };
  const declared = { network: "eip155:84532", asset: USDC.address, maxPrice: "0.002", decimals: 6 };

  it("parses the v2 PAYMENT-REQUIRED header and the v1 body with legacy network names", () => {
    const header = encodePaymentRequiredHeader({
      x402Version: 2,
      resource: { url: "http://s/x" },
      accepts: [requirement],
    });
    const v2 = parse402(header, "not json");
    assert.equal(v2?.x402Version, 2);
    assert.equal(at(v2?.accepts ?? [], 0).amountAtomic, 1500n);
    const { amount, ...rest } = requirement;
    const v1 = parse402(
      null,
      JSON.stringify({
        x402Version: 1,
        accepts: [{ ...rest, network: "base-sepolia", maxAmountRequired: amount }],
      }),
    );
    assert.equal(at(v1?.accepts ?? [], 0).caip2, "eip155:84532");
    assert.equal(parse402(null, "{}"), undefined);
  });

  it("validates network, asset and price exactly", () => {
    const parsed = parse402(null, JSON.stringify({ x402Version: 2, accepts: [requirement] }))!;
    const ok = evaluate402(parsed, declared);
    assert.ok(ok.ok);
    assert.equal(ok.price, "0.0015");
    assert.equal(
      evaluate402(parsed, { ...declared, maxPrice: "0.0015" }).ok,
      true,
      "equal to maxPrice is fine",
    );
    assert.equal(evaluate402(parsed, { ...declared, maxPrice: "0.00149" }).reason, "PricingMismatch");
    assert.equal(evaluate402(parsed, { ...declared, network: "eip155:8453" }).reason, "NetworkMismatch");
    assert.equal(
      evaluate402(parsed, { ...declared, asset: "0x0000000000000000000000000000000000000001" }).reason,
      "AssetMismatch",
    );
    const unknownToken = parse402(
      null,
      JSON.stringify({ accepts: [{ ...requirement, asset: "0x0000000000000000000000000000000000000002" }] }),
    )!;
    assert.equal(evaluate402(unknownToken, { ...declared, asset: undefined }).reason, "PricingMismatch");
    // A purchase that names the token gives its decimals: the price is read with them.
    const named = { ...declared, asset: "0x0000000000000000000000000000000000000002", decimals: 3 };
    assert.equal(evaluate402(unknownToken, { ...named, maxPrice: "1.5" }).ok, true);
    assert.equal(evaluate402(unknownToken, { ...named, maxPrice: "1.4" }).reason, "PricingMismatch");
    assert.equal(evaluate402({ x402Version: 2, accepts: [] }, declared).reason, "ProbeError");
  });
});

describe("runtime: work queue", () => {
  it("collapses duplicates, never runs one key twice at once, and re-runs a key changed while running", async () => {
    const runs: string[] = [];
    let active = 0;
    let maxActive = 0;
    const queue = new WorkQueue(async (key) => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs.push(key);
      await new Promise((r) => setTimeout(r, 20));
      active--;
    }, 1);
    queue.add("a");
    queue.add("a");
    queue.add("b");
    await new Promise((r) => setTimeout(r, 5));
    queue.add("a"); // while "a" runs: once more afterwards
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(runs, ["a", "b", "a"]);
    assert.equal(maxActive, 1);
    queue.add("c", 30);
    queue.add("c", 500); // a later schedule does not postpone an earlier one
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(runs.slice(3), ["c"]);
    await queue.shutdown();
  });

  it("backs off exponentially up to a cap and resets", () => {
    const b = new Backoff(500, 2000);
    assert.deepEqual([b.next("k"), b.next("k"), b.next("k"), b.next("k")], [500, 1000, 2000, 2000]);
    b.reset("k");
    assert.equal(b.next("k"), 500);
  });
});

describe("runtime: controller settings", () => {
  it("finds the gateway's internal port from GATEWAY_URL when not given", () => {
    assert.equal(
      gatewayInternalUrl(undefined, { GATEWAY_URL: "http://x402-gateway.obol.svc:8080" }),
      "http://x402-gateway.obol.svc:8081",
    );
    assert.equal(gatewayInternalUrl("http://a:1", { GATEWAY_URL: "http://b:2" }), "http://a:1");
  });
});

describe("runtime: event wiring (which events enqueue which reconciles)", () => {
  type Call = string;
  const wired = () => {
    const calls: Call[] = [];
    const router = new EventRouter({
      add: (kind, name) => calls.push(`add ${kind}/${name}`),
      addAllSoon: (kind) => calls.push(`all ${kind}`),
      forget: (kind, name) => calls.push(`forget ${kind}/${name}`),
      claimsChanged: () => calls.push("claims"),
    });
    const take = () => calls.splice(0);
    return { router, take };
  };
  const obj = (name: string, generation: number, uid = `uid-${name}`) => ({
    metadata: { name, generation, uid, resourceVersion: String(Math.random()) },
  });

  it("ServiceOffer: a new, changed or deleted spec re-reconciles every offer; any event every identity", () => {
    const { router, take } = wired();
    router.handle("serviceOffer", "add", obj("a", 1));
    assert.deepEqual(take(), ["claims", "all serviceOffer", "all agentIdentity"]);
    router.handle("serviceOffer", "update", obj("a", 1));
    assert.deepEqual(take(), ["all agentIdentity"], "our own status write moves no claim");
    router.handle("serviceOffer", "update", obj("a", 2));
    assert.deepEqual(take(), ["claims", "all serviceOffer", "all agentIdentity"]);
    router.handle("serviceOffer", "delete", obj("a", 2));
    assert.deepEqual(take(), ["forget serviceOffer/a", "claims", "all serviceOffer", "all agentIdentity"]);
    router.listed("serviceOffer", obj("b", 3));
    router.handle("serviceOffer", "update", obj("b", 3));
    assert.deepEqual(take(), ["all agentIdentity"], "a listed offer is not new to a later update");
  });

  it("AgentIdentity: added, deleted or spec changed → itself and every offer; status-only → nothing", () => {
    const { router, take } = wired();
    router.handle("agentIdentity", "add", obj("default", 1));
    assert.deepEqual(take(), ["add agentIdentity/default", "all serviceOffer"]);
    router.handle("agentIdentity", "update", obj("default", 1));
    assert.deepEqual(take(), []);
    router.handle("agentIdentity", "update", obj("default", 2));
    assert.deepEqual(take(), ["add agentIdentity/default", "all serviceOffer"]);
    router.handle("agentIdentity", "delete", obj("default", 2));
    assert.deepEqual(take(), [
      "forget agentIdentity/default",
      "add agentIdentity/default",
      "all serviceOffer",
    ]);
  });

  it("PurchaseRequest: added, deleted or spec changed → itself only; status-only (spend counters) → nothing", () => {
    const { router, take } = wired();
    router.listed("purchaseRequest", obj("p", 4));
    router.handle("purchaseRequest", "update", obj("p", 4));
    assert.deepEqual(take(), []);
    router.handle("purchaseRequest", "update", obj("p", 5));
    assert.deepEqual(take(), ["add purchaseRequest/p"]);
    router.handle("purchaseRequest", "add", obj("q", 1));
    router.handle("purchaseRequest", "delete", obj("q", 1));
    assert.deepEqual(take(), ["add purchaseRequest/q", "forget purchaseRequest/q", "add purchaseRequest/q"]);
  });
});
