import * as assert from "node:assert/strict";
import type { SupportedResponse } from "@x402/core/types";
import type { Payment } from "../../api/resources";
import { FacilitatorWatch } from "../../controller/gateway/facilitatorWatch";
import { RouteState } from "../../controller/gateway/state";
import {
  facilitatorExtensions,
  facilitatorView,
  offerSupport,
  uptoFacilitators,
} from "../../controller/payments/facilitatorSupport";
import { offerPayments, requirementsFor } from "../../controller/payments/requirements";
import { computeOfferStatus } from "../../controller/reconciler/serviceOffer";
import { resolveClaims } from "../../controller/shared/offers";
import { at } from "../harness/assertions";
import { offerObject } from "./runtimeFixtures";

const URL_ = "http://facilitator.test";
const supported = (kinds: [number, string, string][], extensions: string[] = []): SupportedResponse => ({
  kinds: kinds.map(([x402Version, scheme, network]) => ({ x402Version, scheme, network: network as never })),
  extensions,
  signers: {},
});
const SEPOLIA = supported([[2, "exact", "eip155:84532"]]);
const offer = offerObject("o");
const payments = (): Payment[] => offerPayments(resolveClaims([offer]).get("ns/o")!.spec!);

describe("facilitator /supported: what it means for an offer", () => {
  it("supports an offer only when a v2 kind lists its scheme on its network", () => {
    const known = (s: SupportedResponse) => ({ state: "known" as const, url: URL_, supported: s });
    assert.deepEqual(offerSupport(payments(), known(SEPOLIA)), { ok: true });
    assert.deepEqual(offerSupport(payments(), known(supported([[2, "exact", "eip155:*"]]))), { ok: true });
    const v1Only = offerSupport(payments(), known(supported([[1, "exact", "eip155:84532"]])));
    assert.equal(v1Only.ok, false, "a v1 kind does not cover the v2 402");
    const other = offerSupport(
      payments(),
      known(
        supported([
          [2, "exact", "eip155:8453"],
          [2, "upto", "eip155:84532"],
        ]),
      ),
    );
    assert.ok(!other.ok);
    assert.equal(other.reason, "FacilitatorUnsupported");
    assert.match(other.message, /does not support x402 v2 scheme "exact" on eip155:84532/);
    assert.match(other.message, /http:\/\/facilitator\.test/);
    assert.match(other.message, /advertises: exact on eip155:8453, upto on eip155:84532/);
    // A second payment on a network the facilitator lacks makes the whole offer unpayable.
    const multi = [...payments(), { ...at(payments(), 0), network: "eip155:1" }];
    const partly = offerSupport(multi, known(SEPOLIA));
    assert.ok(!partly.ok);
    assert.match(partly.message, /on eip155:1 /);
    assert.doesNotMatch(partly.message, /"exact" on eip155:84532/);
  });

  it("keeps the last answer for maxStaleMs after it was read, then calls the facilitator unreachable", () => {
    const last = { supported: SEPOLIA, at: 1_000 };
    const lastError = { message: "connect ECONNREFUSED", at: 5_000 };
    assert.equal(facilitatorView({ url: URL_, last }, 1_000_000, 10_000).state, "known", "no error: kept");
    assert.equal(facilitatorView({ url: URL_, last, lastError }, 5_000, 10_000).state, "known");
    assert.equal(facilitatorView({ url: URL_, last, lastError }, 11_000, 10_000).state, "known");
    const stale = facilitatorView({ url: URL_, last, lastError }, 11_001, 10_000);
    assert.equal(stale.state, "unreachable");
    const verdict = offerSupport(payments(), stale);
    assert.ok(!verdict.ok);
    assert.equal(verdict.reason, "FacilitatorUnreachable");
    assert.match(verdict.message, /http:\/\/facilitator\.test .*ECONNREFUSED/);
    // A later success clears an older error, whatever its age.
    const again = { supported: SEPOLIA, at: 6_000 };
    assert.equal(facilitatorView({ url: URL_, last: again, lastError }, 99_000, 10_000).state, "known");
    const never = facilitatorView({ url: URL_, lastError }, 5_000, 10_000);
    assert.equal(never.state, "unreachable");
    assert.match(never.state === "unreachable" ? never.message : "", /has not answered GET \/supported yet/);
  });

  it("declares eip2612GasSponsoring only when the facilitator advertises it", () => {
    const spec = resolveClaims([
      offerObject("p", {
        payment: {
          ...at(payments(), 0),
          asset: { ...at(payments(), 0).asset, transferMethod: "permit2", eip2612: true },
        },
      }),
    ]).get("ns/p")!.spec!;
    const view = (extensions: string[]) => ({
      state: "known" as const,
      url: URL_,
      supported: { ...SEPOLIA, extensions },
    });
    const without = requirementsFor(spec, "u", facilitatorExtensions(view([])));
    assert.equal(
      without.extensions?.eip2612GasSponsoring,
      undefined,
      "a facilitator without the extension: not declared",
    );
    const withIt = requirementsFor(spec, "u", facilitatorExtensions(view(["eip2612GasSponsoring"])));
    assert.ok(withIt.extensions?.eip2612GasSponsoring);
    assert.deepEqual(
      facilitatorExtensions({ state: "unreachable", url: URL_, message: "x" }),
      [],
      "nothing is declared on an unknown facilitator's behalf",
    );
  });

  it("takes the upto signer per network from v2 upto kinds only, and none from an unreachable facilitator", () => {
    const signer = "0x00000000000000000000000000000000000000aa";
    const kinds: SupportedResponse["kinds"] = [
      { x402Version: 2, scheme: "upto", network: "eip155:84532", extra: { facilitatorAddress: signer } },
      { x402Version: 1, scheme: "upto", network: "eip155:8453", extra: { facilitatorAddress: signer } },
      { x402Version: 2, scheme: "exact", network: "eip155:1", extra: { facilitatorAddress: signer } },
      { x402Version: 2, scheme: "upto", network: "eip155:10" },
    ];
    const known = uptoFacilitators({
      state: "known",
      url: URL_,
      supported: { kinds, extensions: [], signers: {} },
    });
    assert.deepEqual([...known], [["eip155:84532", signer]]);
    assert.equal(uptoFacilitators({ state: "unreachable", url: URL_, message: "x" }).size, 0);
  });

  it("the gateway neither routes nor lists an unsupported offer, and reports why; the controller turns it into PaymentGateReady/Ready", () => {
    const ready = offerObject("o", {}, { ready: true });
    let view: ReturnType<FacilitatorWatch["view"]> = {
      state: "known",
      url: URL_,
      supported: supported([[2, "exact", "eip155:8453"]]),
    };
    let version = 0;
    const state = new RouteState(
      { offers: () => [ready], identity: () => undefined, synced: () => true, version: () => 1 },
      {},
      { view: () => view, version: () => version },
    );
    assert.equal(state.held().length, 1, "the route is held");
    assert.equal(state.publicOffers().length, 0, "but not served: no 402 for a payment no one settles");
    const report = state.report("x402");
    const route = at(report.routes, 0);
    assert.equal(route.public, false);
    assert.equal(route.facilitator?.ok, false);
    const status = computeOfferStatus(ready, {
      verdict: resolveClaims([ready]).get("ns/o")!,
      upstream: { ok: true, url: "http://u/health", status: 200 },
      gateway: { ok: true, report },
      now: new Date("2026-01-01T00:00:00Z"),
    });
    const cond = (type: string) => status.conditions?.find((c) => c.type === type);
    assert.equal(cond("PaymentGateReady")?.reason, "FacilitatorUnsupported");
    assert.equal(cond("Ready")?.status, "False");
    assert.equal(cond("Ready")?.reason, "FacilitatorUnsupported");
    assert.match(cond("Ready")?.message ?? "", /eip155:84532/);

    view = { state: "known", url: URL_, supported: SEPOLIA };
    version++;
    assert.equal(state.publicOffers().length, 1, "served once the facilitator advertises the network");
    assert.deepEqual(at(state.report("x402").routes, 0).facilitator, { ok: true });
  });

  it("the watcher reads /supported at start, retries failures sooner than the interval, and keeps the last answer", async () => {
    const answers: (SupportedResponse | Error)[] = [new Error("down"), new Error("down"), SEPOLIA];
    let calls = 0;
    let now = 0;
    const watch = new FacilitatorWatch({
      facilitator: {
        getSupported: async () => {
          calls++;
          const next = answers.shift() ?? new Error("down again");
          if (next instanceof Error) throw next;
          return next;
        },
      },
      url: URL_,
      // Far beyond the test: only the failure backoff (10 ms, 20 ms) can make the later reads.
      intervalMs: 60_000,
      retryMinMs: 10,
      maxStaleMs: 1_000,
      log: () => undefined,
      now: () => now,
    });
    try {
      await watch.ready();
      assert.equal(watch.view().state, "unreachable", "never read: unreachable");
      const deadline = Date.now() + 10_000;
      while (watch.view().state !== "known" && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      assert.equal(calls, 3, "two failures, each retried sooner than the interval");
      assert.equal(watch.view().state, "known");
      now = 10_000;
      assert.equal(watch.view().state, "known", "no failure since: the answer stays good");
    } finally {
      watch.stop();
    }
  });
});
