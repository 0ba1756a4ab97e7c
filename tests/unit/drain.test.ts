import * as assert from "node:assert/strict";
import { DEFAULT_DRAIN_SECONDS, DRAIN_FINALIZER, drainPhase, offerEnd } from "../../api/drain";
import { serviceOfferSpecSchema } from "../../api/resources";
import { buildCatalog } from "../../controller/gateway/catalog/model";
import { renderServicesJson } from "../../controller/gateway/catalog/servicesJson";
import { renderSkillMd } from "../../controller/gateway/catalog/skillMd";
import { renderStorefront } from "../../controller/gateway/catalog/storefront";
import { renderX402Discovery } from "../../controller/gateway/catalog/wellKnownX402";
import { buildRouteTable } from "../../controller/gateway/routing";
import { drainDecision } from "../../controller/reconciler/serviceOffer";
import type { ServiceOfferObject } from "../../controller/shared/kube";
import { isOfferReady, resolveClaims } from "../../controller/shared/offers";
import { ConfigError, type ParseContext, parseStackConfig } from "../../program/config/parse";
import { at, defined, only } from "../harness/assertions";
import { offerObject, recordingGate, startTestGateway } from "./runtimeFixtures";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ctx: ParseContext = { stack: "dev", secretKeys: new Set() };
const configOffer = (extra: Record<string, unknown>) => ({
  name: "echo",
  upstream: { url: "http://127.0.0.1:9000" },
  payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
  ...extra,
});

function issuesOf(raw: Record<string, unknown>): { path: string; message: string }[] {
  try {
    parseStackConfig(raw, ctx);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.issues;
  }
  return [];
}

const T0 = Date.parse("2026-12-02T03:00:00Z");

function deleting(obj: ServiceOfferObject, at: number, finalizers = [DRAIN_FINALIZER]): ServiceOfferObject {
  obj.metadata!.deletionTimestamp = new Date(at);
  obj.metadata!.finalizers = finalizers;
  return obj;
}

describe("offer drain: config (offers[i].endsAt, drainSeconds)", () => {
  it("normalizes endsAt to UTC and carries both into the ServiceOffer spec the CRD accepts", () => {
    const cfg = parseStackConfig(
      { offers: [configOffer({ endsAt: "2026-12-31T23:00:00+01:00", drainSeconds: 30 })] },
      ctx,
    );
    const spec = only(cfg.offers).spec;
    assert.equal(spec.endsAt, "2026-12-31T22:00:00.000Z");
    assert.equal(spec.drainSeconds, 30);
    assert.ok(serviceOfferSpecSchema.safeParse(spec).success);
  });

  for (const [what, value] of [
    ["a date without a time", "2026-12-31"],
    ["a time without a zone", "2026-12-31T23:00:00"],
    ["words", "next friday"],
    ["an impossible date", "2026-13-45T99:00:00Z"],
    ["a number", 1767222000],
  ] as const) {
    it(`refuses ${what} at preview, naming offers[0].endsAt and the accepted form`, () => {
      const issue = defined(
        issuesOf({ offers: [configOffer({ endsAt: value })] }).find((i) => i.path === "offers[0].endsAt"),
        "an issue at offers[0].endsAt",
      );
      assert.match(issue.message, /RFC 3339 with a zone, e\.g\. "2026-12-31T23:00:00Z"/);
    });
  }

  it("refuses a negative or fractional drainSeconds, naming the field", () => {
    for (const value of [-1, 1.5, 86_401]) {
      const issues = issuesOf({ offers: [configOffer({ drainSeconds: value })] });
      assert.ok(
        issues.some((i) => i.path === "offers[0].drainSeconds"),
        `${value}: ${JSON.stringify(issues)}`,
      );
    }
  });
});

describe("offer drain: when an offer ends and goes away (api/drain.ts)", () => {
  it("ends at endsAt or at its deletion, whichever is first, and is gone drainSeconds later", () => {
    assert.deepEqual(offerEnd({}), {});
    const declared = offerEnd({ endsAt: new Date(T0).toISOString(), drainSeconds: 10 });
    assert.deepEqual(declared, { endsAt: T0, goneAt: T0 + 10_000 });
    assert.deepEqual(offerEnd({ endsAt: new Date(T0).toISOString() }, new Date(T0 - 5000)), {
      endsAt: T0 - 5000,
      goneAt: T0 - 5000 + DEFAULT_DRAIN_SECONDS * 1000,
    });
    assert.equal(offerEnd({ endsAt: new Date(T0).toISOString() }, new Date(T0 + 5000)).endsAt, T0);
    assert.equal(drainPhase(declared, T0 - 1), "open");
    assert.equal(drainPhase(declared, T0), "ended");
    assert.equal(drainPhase(declared, T0 + 9_999), "ended");
    assert.equal(drainPhase(declared, T0 + 10_000), "gone");
    assert.equal(drainPhase({}, T0), "open");
  });

  it("the controller releases the finalizer of a deleted offer only once its drain is over", () => {
    const obj = deleting(offerObject("a", { drainSeconds: 30 }), T0);
    assert.deepEqual(drainDecision(obj, T0 + 1000), { release: false, afterMs: 29_000 });
    assert.deepEqual(drainDecision(obj, T0 + 30_000), { release: true });
    const ended = deleting(
      offerObject("b", { endsAt: new Date(T0 - 60_000).toISOString(), drainSeconds: 30 }),
      T0,
    );
    assert.deepEqual(drainDecision(ended, T0), { release: true }, "ended long before the removal: at once");
    assert.equal(drainDecision(offerObject("c"), T0), undefined, "not deleted");
    assert.equal(drainDecision(deleting(offerObject("d"), T0, ["other"]), T0), undefined, "not ours");
    const broken = deleting(offerObject("e", { drainSeconds: "x" }), T0);
    assert.deepEqual(drainDecision(broken, T0 + DEFAULT_DRAIN_SECONDS * 1000), { release: true });
  });

  it("a draining offer keeps its path, but yields it to a live offer (a replacement takes over at once)", () => {
    const old = deleting(offerObject("old", { path: "/services/x" }), T0);
    const alone = resolveClaims([old]);
    assert.equal(alone.get("ns/old")?.ok, true);
    const replacement = offerObject("new", { path: "/services/x" }, { created: "2026-06-01T00:00:00Z" });
    const both = resolveClaims([old, replacement]);
    assert.equal(both.get("ns/new")?.ok, true);
    assert.equal((both.get("ns/old") as { reason: string }).reason, "PathConflict");
    // The API server bumps the generation when it marks an object with finalizers deleted.
    const bumped = deleting(
      offerObject("bumped", {}, { ready: true, generation: 3, readyGeneration: 2 }),
      T0,
    );
    assert.equal(isOfferReady(bumped), true, "a draining offer stays routed");
    assert.equal(
      isOfferReady(offerObject("stale", {}, { ready: true, generation: 3, readyGeneration: 2 })),
      false,
    );
    const plain = deleting(offerObject("plain", { path: "/services/y" }), T0, []);
    assert.equal(resolveClaims([plain]).has("ns/plain"), false, "deleted without the finalizer: nothing");
  });
});

describe("offer drain: the gateway and its catalogs", () => {
  const endsAt = new Date(Date.now() + 3_600_000).toISOString();

  it("catalogs show when an offer ends, mark an ended one, and drop it when its route is gone", () => {
    const table = buildRouteTable(
      [
        offerObject("soon", { endsAt }, { ready: true }),
        offerObject("ended", { endsAt: new Date(T0).toISOString(), drainSeconds: 60 }, { ready: true }),
        offerObject(
          "gone",
          { endsAt: new Date(T0 - 61_000).toISOString(), drainSeconds: 60 },
          { ready: true },
        ),
      ],
      {},
    );
    const catalog = buildCatalog(table, "https://x.test", undefined, T0 + 1000);
    const services = renderServicesJson(catalog).services;
    assert.deepEqual(
      services.map((s) => [s.name, s.endsAt, s.ended]),
      [
        ["ended", new Date(T0).toISOString(), true],
        ["soon", endsAt, undefined],
      ],
    );
    const skill = renderSkillMd(catalog);
    assert.match(
      skill,
      new RegExp(`Ends at ${endsAt.replace(/\./g, "\\.")}: after that new payments are refused \\(410`),
    );
    assert.match(skill, /\*\*Ended\*\* at 2026-12-02T03:00:00\.000Z/);
    const page = renderStorefront(catalog);
    assert.match(
      page,
      /<dt>Ended<\/dt><dd class="ends"><time datetime="2026-12-02T03:00:00.000Z">2026-12-02 03:00 UTC<\/time> · no longer taking payments/,
    );
    assert.match(page, new RegExp(`<dt>Ends</dt><dd class="ends"><time datetime="${endsAt}">`));
    assert.doesNotMatch(page, /data-offer="gone"/);
    const discovery = renderX402Discovery(catalog).resources;
    assert.ok(
      discovery.every((r) => !r.includes("/services/ended")),
      "an ended offer is not advertised",
    );
    assert.ok(discovery.some((r) => r.includes("/services/soon")));
  });

  it("a gone offer's route is 404 though its object still exists; an open one reaches the gate", async () => {
    const calls: string[] = [];
    const objects = [
      offerObject("open", { endsAt }, { ready: true }),
      offerObject(
        "gone",
        { endsAt: new Date(Date.now() - 120_000).toISOString(), drainSeconds: 60 },
        { ready: true },
      ),
    ];
    const { base, close } = await startTestGateway(objects, recordingGate(calls));
    try {
      const gone = await fetch(`${base}/services/gone/x`);
      assert.equal(gone.status, 404);
      assert.equal(((await gone.json()) as { error: string }).error, "not_found");
      assert.equal((await fetch(`${base}/services/open/x`)).status, 402);
      assert.deepEqual(calls, ["open"]);
      const listed = (await (await fetch(`${base}/api/services.json`)).json()) as {
        services: { name: string }[];
      };
      assert.deepEqual(
        listed.services.map((s) => s.name),
        ["open"],
      );
      assert.equal(at(listed.services, 0).name, "open");
    } finally {
      close();
    }
  });
});
