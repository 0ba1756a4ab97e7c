/**
 * A gateway configured for Coinbase's facilitator (CDP_API_KEY_ID / CDP_API_KEY_SECRET) pays
 * through a stand-in for CDP's API on loopback: it checks each call's JWT as CDP does (signed by
 * the registered key, issuer `cdp`, subject the key id, `uris` naming the method, CDP's host and
 * the path, within its validity) and refuses anything else with 401; what passes goes on to this
 * project's self-run facilitator on anvil. Real processes, real HTTP, x402's own buyer client.
 */
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { wrapFetchWithPayment } from "@x402/fetch";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { CDP_FACILITATOR_URL } from "../../api/contract";
import { ANVIL_KEYS } from "../harness/anvil";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, tail } from "../harness/processes";
import { v2Client } from "../harness/x402Buyers";
import {
  createNamespace,
  createPaidOffer,
  installCrds,
  type SellerRuntime,
  startFacilitatorProcess,
  startSellerRuntime,
  Upstream,
} from "./runtime/helpers";

const KEY_ID = "organizations/obol-test/apiKeys/cdp-stand-in";

/** What CDP checks of a call's bearer JWT; the reason it is refused, or undefined. */
function refusal(
  authorization: string | undefined,
  method: string,
  path: string,
  publicKey: crypto.KeyObject,
): string | undefined {
  const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(authorization ?? "");
  if (!match) return "no bearer JWT";
  const [, head = "", body = "", signature = ""] = match;
  const header = JSON.parse(Buffer.from(head, "base64url").toString("utf8"));
  const claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  if (header.alg !== "EdDSA" || header.kid !== KEY_ID) return `header ${JSON.stringify(header)}`;
  if (!crypto.verify(null, Buffer.from(`${head}.${body}`), publicKey, Buffer.from(signature, "base64url")))
    return "bad signature";
  const now = Date.now() / 1000;
  if (claims.iss !== "cdp" || claims.sub !== KEY_ID) return `claims ${JSON.stringify(claims)}`;
  if (!(claims.nbf <= now + 5 && now < claims.exp)) return "expired or not yet valid";
  const cdp = new URL(CDP_FACILITATOR_URL);
  const expected = `${method} ${cdp.host}${cdp.pathname}${path}`;
  if (JSON.stringify(claims.uris) !== JSON.stringify([expected]))
    return `uris ${JSON.stringify(claims.uris)}`;
  return undefined;
}

describe("the gateway paying through Coinbase's facilitator API (CDP API key; a stand-in checks the JWTs)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let seller: SellerRuntime;
  let standIn: http.Server;
  let standInUrl: string;
  const upstream = new Upstream();
  const payer = privateKeyToAccount(ANVIL_KEYS[2]);
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const calls: { method: string; path: string; refused?: string }[] = [];
  const key = crypto.generateKeyPairSync("ed25519");
  const keySecret = Buffer.concat([
    key.privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32),
    key.publicKey.export({ format: "der", type: "spki" }).subarray(-32),
  ]).toString("base64");

  before(async () => {
    const logDir = path.join(scratchDir("cdp-facilitator"), "logs");
    cp = await sharedControlPlane();
    await installCrds(cp);
    const ns = `cdp-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.mint(payer.address, 10_000_000n);
    await upstream.start();
    const facilitatorPort = await freePort();
    facilitator = await startFacilitatorProcess({
      logDir,
      rpcUrl: chain.anvil.rpcUrl,
      port: facilitatorPort,
      signerKey: ANVIL_KEYS[0],
    });
    standIn = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const method = req.method ?? "GET";
        const callPath = req.url ?? "/";
        const refused = refusal(req.headers.authorization, method, callPath, key.publicKey);
        calls.push({ method, path: callPath, ...(refused ? { refused } : {}) });
        if (refused) {
          res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: refused }));
          return;
        }
        const forwarded = await fetch(`http://127.0.0.1:${facilitatorPort}${callPath}`, {
          method,
          headers: { "content-type": "application/json" },
          ...(method === "GET" ? {} : { body: Buffer.concat(chunks) }),
        });
        res
          .writeHead(forwarded.status, {
            "content-type": forwarded.headers.get("content-type") ?? "application/json",
          })
          .end(Buffer.from(await forwarded.arrayBuffer()));
      });
    });
    await new Promise<void>((resolve) => standIn.listen(0, "127.0.0.1", resolve));
    standInUrl = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`;
    seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir,
      facilitatorUrl: standInUrl,
      gatewayEnv: { CDP_API_KEY_ID: KEY_ID, CDP_API_KEY_SECRET: keySecret },
    });
    await createPaidOffer(cp, ns, "cdp-paid", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo,
      asset: chain.asset,
      logs: [seller.controller, seller.gateway],
      routedAt: [seller.publicUrl],
    });
  });

  after(async () => {
    await seller?.stop();
    await new Promise((resolve) => standIn?.close(resolve));
    await facilitator?.stop();
    await upstream.stop();
    await chain?.stop();
  });

  it("the stand-in refuses a call without the key's JWT (so what passes was checked)", async () => {
    const res = await fetch(`${standInUrl}/supported`);
    assert.equal(res.status, 401);
    assert.equal(calls.at(-1)?.refused, "no bearer JWT");
  });

  it("an exact payment is verified and settled through it, every call signed for its own path", async () => {
    const before = await chain.balanceOf(payTo);
    const since = calls.length;
    const res = await wrapFetchWithPayment(
      fetch,
      v2Client(payer),
    )(`${seller.publicUrl}/services/cdp-paid/v2`);
    assert.equal(res.status, 200, `${await res.clone().text()}\n${tail(seller.gateway.logFile)}`);
    const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
    assert.equal(receipt.success, true);
    assert.equal(await chain.balanceOf(payTo), before + 1000n, "settled once, on chain");
    const made = calls.slice(since);
    assert.deepEqual(
      made.map((c) => `${c.method} ${c.path}`),
      ["POST /verify", "POST /settle"],
    );
    assert.deepEqual(
      made.filter((c) => c.refused),
      [],
    );
    // The gateway's /supported reads (which schemes its offers can take) were signed too: the
    // only refused call is the test's own unsigned one.
    assert.ok(
      calls.some((c) => c.path === "/supported" && !c.refused),
      "a signed /supported read",
    );
    assert.deepEqual(
      calls.filter((c) => c.refused).map((c) => `${c.method} ${c.path}: ${c.refused}`),
      ["GET /supported: no bearer JWT"],
    );
  });
});
