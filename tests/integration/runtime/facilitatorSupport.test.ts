/**
 * The gateway reads its facilitator's GET /supported (a real self-run facilitator process) and
 * the controller turns it into the offer's conditions: an offer on a network the facilitator does
 * not advertise is not Ready (FacilitatorUnsupported) and gets no 402, and becomes Ready once the
 * facilitator advertises it; a facilitator that goes away keeps Ready offers for the stale
 * window, then pauses them (FacilitatorUnreachable) until it is back.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { ControlPlane } from "../../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../../harness/env";
import type { ManagedProcess } from "../../harness/processes";
import {
  BASE_SEPOLIA,
  condition,
  createNamespace,
  createObject,
  getObject,
  httpGet,
  installCrds,
  offerSpec,
  type SellerRuntime,
  startSellerRuntime,
  startSupportedOnlyFacilitator,
  Upstream,
  waitForCondition,
} from "./helpers";

const STALE_MS = 4_000;

describe("runtime: the facilitator's /supported decides which offers can be paid", () => {
  let cp: ControlPlane;
  const ns = `facsup-${process.pid}`;
  const logDir = path.join(scratchDir("facilitator-support"), "logs");
  const upstream = new Upstream();
  let facilitator: { proc: ManagedProcess; url: string; port: number } | undefined;
  let seller: SellerRuntime;
  let port: number;

  const logs = () => [seller.controller, seller.gateway, ...(facilitator ? [facilitator.proc] : [])];
  /** Waits until the offer's Ready condition is `status` (with `reason`, if given). */
  const readyIs = (status: "True" | "False", reason?: string) =>
    waitForCondition(
      cp,
      ns,
      "serviceoffers",
      "echo",
      { type: "Ready", status, ...(reason ? { reason } : {}) },
      { logs: logs() },
    );
  const restartFacilitator = async (networks: string[]) => {
    await facilitator?.proc.stop();
    facilitator = await startSupportedOnlyFacilitator({ logDir, networks, port });
  };

  before(async () => {
    cp = await sharedControlPlane();
    await installCrds(cp);
    await createNamespace(cp, ns);
    await upstream.start();
    // Base mainnet only: the offer below is on base-sepolia.
    facilitator = await startSupportedOnlyFacilitator({ logDir, networks: ["eip155:8453"] });
    port = facilitator.port;
    seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir,
      facilitatorUrl: facilitator.url,
      gatewayEnv: {
        FACILITATOR_SUPPORTED_INTERVAL_MS: "300",
        FACILITATOR_SUPPORTED_MAX_STALE_MS: String(STALE_MS),
      },
    });
  });

  after(async () => {
    await seller?.stop();
    await facilitator?.proc.stop();
    await upstream.stop();
  });

  it("an offer on an unadvertised network is not Ready and gets no 402; it becomes Ready when the facilitator advertises it", async () => {
    await createObject(cp, ns, "serviceoffers", "ServiceOffer", "echo", offerSpec(upstream.port));
    const offer = await readyIs("False", "FacilitatorUnsupported");
    const ready = condition(offer, "Ready");
    assert.match(ready?.message ?? "", new RegExp(`"exact" on ${BASE_SEPOLIA}`), "names scheme and network");
    assert.ok(ready?.message?.includes(facilitator!.url), `names the facilitator: ${ready?.message}`);
    assert.equal(condition(offer, "PaymentGateReady")?.reason, "FacilitatorUnsupported");
    assert.equal(condition(offer, "UpstreamHealthy")?.status, "True", "only the facilitator is in the way");
    const paid = await httpGet(`${seller.publicUrl}/services/echo/anything`);
    assert.equal(paid.status, 404, "no 402 asks for a payment the facilitator cannot settle");
    assert.equal(paid.headers.get("payment-required"), null);
    const catalog = await httpGet(`${seller.publicUrl}/api/services.json`);
    assert.doesNotMatch(catalog.text, /services\/echo/, "not listed either");

    await restartFacilitator(["eip155:8453", BASE_SEPOLIA]);
    await readyIs("True");
    const required = await httpGet(`${seller.publicUrl}/services/echo/anything`);
    assert.equal(required.status, 402);
    assert.ok(required.headers.get("payment-required"), "the 402 carries PAYMENT-REQUIRED");
  });

  it("a facilitator that goes away keeps Ready offers for the stale window, then FacilitatorUnreachable until it is back", async () => {
    await readyIs("True");
    await facilitator?.proc.stop();
    const stoppedAt = Date.now();
    facilitator = undefined;
    // Several failed reads (every 300 ms and sooner) happen in the first half of the window:
    // none of them takes the offer down.
    while (Date.now() - stoppedAt < STALE_MS / 2) {
      assert.equal(condition(await getObject(cp, ns, "serviceoffers", "echo"), "Ready")?.status, "True");
      assert.equal((await httpGet(`${seller.publicUrl}/services/echo/x`)).status, 402);
      await new Promise((r) => setTimeout(r, 200));
    }
    const down = await readyIs("False", "FacilitatorUnreachable");
    assert.match(condition(down, "Ready")?.message ?? "", /has not answered GET \/supported/);
    assert.ok(Date.now() - stoppedAt >= STALE_MS - 1_000, "not before the stale window ran out");
    assert.equal((await httpGet(`${seller.publicUrl}/services/echo/x`)).status, 404);

    await restartFacilitator([BASE_SEPOLIA]);
    await readyIs("True");
    assert.equal((await httpGet(`${seller.publicUrl}/services/echo/x`)).status, 402);
  });
});
