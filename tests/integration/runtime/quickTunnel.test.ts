/**
 * A quick tunnel's URL is random and changes when cloudflared restarts: the controller reads it
 * from cloudflared's metrics server and shows it in offer status. cloudflared itself cannot run
 * here (no internet), so a loopback server answers /quicktunnel the way cloudflared's does.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import type { ControlPlane } from "../../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../../harness/env";
import { freePort, waitFor } from "../../harness/processes";
import {
  createNamespace,
  createObject,
  getObject,
  installCrds,
  offerSpec,
  type SellerRuntime,
  startSellerRuntime,
  Upstream,
  waitForCondition,
} from "./helpers";

describe("runtime: following a quick tunnel's URL", function () {
  this.timeout(3 * 60_000);
  let cp: ControlPlane;
  let seller: SellerRuntime;
  let metrics: http.Server;
  let reported = ""; // cloudflared answers an empty hostname until the tunnel is up
  let asked = 0;
  const upstream = new Upstream();
  const ns = `qt-${process.pid}`;

  before(async () => {
    cp = await sharedControlPlane();
    await installCrds(cp);
    await createNamespace(cp, ns);
    await upstream.start();
    const port = await freePort();
    metrics = http.createServer((req, res) => {
      asked++;
      if (req.url !== "/quicktunnel") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ hostname: reported }));
    });
    await new Promise<void>((resolve) => metrics.listen(port, "127.0.0.1", resolve));
    seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir: path.join(scratchDir("quick-tunnel"), "logs"),
      controllerArgs: [
        "--probe-interval-ms",
        "1000",
        "--quick-tunnel-metrics-url",
        `http://127.0.0.1:${port}`,
        "--quick-tunnel-poll-ms",
        "300",
      ],
    });
  });

  after(async () => {
    await seller?.stop();
    await upstream.stop();
    await new Promise((resolve) => metrics?.close(resolve));
  });

  const endpoint = async () =>
    ((await getObject(cp, ns, "serviceoffers", "tunneled"))?.status as { endpoint?: string } | undefined)
      ?.endpoint;

  it("shows the path until cloudflared reports a URL, then the URL, and follows a new one", async () => {
    await createObject(cp, ns, "serviceoffers", "ServiceOffer", "tunneled", {
      ...offerSpec(upstream.port),
      path: "/services/tunneled",
    });
    await waitForCondition(
      cp,
      ns,
      "serviceoffers",
      "tunneled",
      { type: "Ready", status: "True" },
      {
        logs: [seller.controller, seller.gateway],
      },
    );
    await waitFor("the controller to ask cloudflared", async () => asked > 0, { timeoutMs: 10_000 });
    assert.equal(await endpoint(), "/services/tunneled", "no URL yet: the endpoint is the path");

    reported = "quietly-random-words.trycloudflare.com";
    await waitFor(
      "the tunnel URL in status",
      async () => (await endpoint()) === "https://quietly-random-words.trycloudflare.com/services/tunneled",
      { timeoutMs: 15_000 },
    );

    reported = "other-words-after-restart.trycloudflare.com"; // cloudflared restarted
    await waitFor(
      "the new tunnel URL in status",
      async () =>
        (await endpoint()) === "https://other-words-after-restart.trycloudflare.com/services/tunneled",
      { timeoutMs: 15_000 },
    );
  });
});
