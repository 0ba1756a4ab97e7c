import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import {
  createSIWxPayload,
  encodeSIWxHeader,
  SIGN_IN_WITH_X,
  type SIWxExtension,
} from "@x402/extensions/sign-in-with-x";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { buildCatalog } from "../../controller/gateway/catalog/model";
import { renderOpenApi } from "../../controller/gateway/catalog/openapi";
import { renderServicesJson } from "../../controller/gateway/catalog/servicesJson";
import { renderSkillMd } from "../../controller/gateway/catalog/skillMd";
import { renderStorefront } from "../../controller/gateway/catalog/storefront";
import { buildRouteTable } from "../../controller/gateway/routing";
import { completeInfo, decideSignIn, NonceMemory, signInChallenge } from "../../controller/payments/signIn";
import { ConfigError, parseStackConfig } from "../../program/config/parse";
import { defined, only } from "../harness/assertions";
import { offerObject, recordingGate, startTestGateway } from "./runtimeFixtures";

const wallet = privateKeyToAccount(generatePrivateKey());
const ORIGIN = new URL("https://seller.test");
const NET = "eip155:84532";
const held = () =>
  only(
    buildRouteTable(
      [offerObject("club", { routes: [{ path: "/members/*", gate: "auth" }] }, { ready: true })],
      {},
    ),
  );
const resource = `${ORIGIN.origin}/services/club/members/me`;
const ctx = { origin: ORIGIN, resourceUrl: resource, networks: [NET] };

/** A credential for `challenge`, optionally with its info changed before signing. */
async function credential(
  challenge: SIWxExtension,
  change: Partial<SIWxExtension["info"]> = {},
  drop: readonly "expirationTime"[] = [],
) {
  const info = { ...completeInfo(challenge, NET), ...change };
  for (const key of drop) delete info[key];
  return encodeSIWxHeader(await createSIWxPayload(info, wallet, info.uri));
}

describe("sign-in routes (gate: auth, x402 sign-in-with-x)", () => {
  it("accepts a wallet's signature of the challenge once; a replay, an expired or old one, another route or origin, another chain or a forged signature are refused with a reason", async () => {
    const challenge = signInChallenge(held(), ORIGIN, resource, Date.now());
    assert.deepEqual(challenge.supportedChains, [{ chainId: NET, type: "eip191" }]);
    assert.equal(challenge.info.domain, "seller.test");
    assert.equal(challenge.info.uri, resource);
    const nonces = new NonceMemory();
    const good = await credential(challenge);
    const ok = await decideSignIn(good, ctx, nonces, Date.now());
    assert.ok(ok.ok, JSON.stringify(ok));
    assert.equal(ok.address.toLowerCase(), wallet.address.toLowerCase());
    assert.ok(nonces.remember(ok.nonce, ok.forgetAt, Date.now()));
    const replay = await decideSignIn(good, ctx, nonces, Date.now());
    assert.equal(replay.ok ? "ok" : replay.reason, "sign_in_replayed");

    const reasonOf = async (header: string | undefined, over: Partial<typeof ctx> = {}) => {
      const v = await decideSignIn(header, { ...ctx, ...over }, new NonceMemory(), Date.now());
      return v.ok ? "ok" : v.reason;
    };
    assert.equal(await reasonOf(undefined), "sign_in_required");
    assert.equal(await reasonOf("not base64 !"), "invalid_sign_in");
    const past = (ms: number) => new Date(Date.now() - ms).toISOString();
    assert.equal(
      await reasonOf(await credential(challenge, { expirationTime: past(1000) })),
      "invalid_siwx_expired",
    );
    assert.equal(
      await reasonOf(await credential(challenge, { issuedAt: past(6 * 60_000) }, ["expirationTime"])),
      "invalid_siwx_issued_at_too_old",
    );
    assert.equal(
      await reasonOf(await credential(challenge), {
        resourceUrl: `${ORIGIN.origin}/services/club/members/other`,
      }),
      "sign_in_wrong_route",
    );
    assert.equal(
      await reasonOf(await credential(challenge), { origin: new URL("https://phish.test") }),
      "invalid_siwx_domain_mismatch",
    );
    assert.equal(
      await reasonOf(await credential(challenge), { networks: ["eip155:1"] }),
      "sign_in_unsupported_chain",
    );
    const forged = JSON.parse(Buffer.from(good, "base64").toString()) as { address: string };
    forged.address = privateKeyToAccount(generatePrivateKey()).address;
    assert.equal(
      await reasonOf(Buffer.from(JSON.stringify(forged)).toString("base64")),
      "invalid_siwx_signature",
    );
  });

  it("through the gateway: 401 with the challenge, then served with the signer's address (the header stripped, a client's own address dropped), a replay 401 again", async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const upPort = (upstream.address() as AddressInfo).port;
    const objects = [
      offerObject(
        "club",
        {
          upstream: { url: `http://127.0.0.1:${upPort}`, healthPath: "/health" },
          routes: [{ path: "/members/*", gate: "auth" }],
        },
        { ready: true },
      ),
    ];
    const paid: string[] = [];
    const { base, close } = await startTestGateway(objects, recordingGate(paid));
    try {
      const url = `${base}/services/club/members/me`;
      const first = await fetch(url);
      assert.equal(first.status, 401);
      assert.match(first.headers.get("www-authenticate") ?? "", /^sign-in-with-x realm="127\.0\.0\.1:\d+"$/);
      const required = decodePaymentRequiredHeader(
        defined(first.headers.get("payment-required") ?? undefined, "challenge"),
      );
      assert.deepEqual(required.accepts, [], "nothing to pay");
      assert.equal(((await first.json()) as { error: string }).error, "sign_in_required");
      const challenge = required.extensions?.[SIGN_IN_WITH_X] as SIWxExtension;
      const info = completeInfo(challenge, NET);
      const header = encodeSIWxHeader(await createSIWxPayload(info, wallet, url));
      const served = await fetch(url, {
        headers: { [SIGN_IN_WITH_X]: header, "x-signed-in-address": "0xforged" },
      });
      assert.equal(served.status, 200, await served.clone().text());
      const got = only(seen);
      assert.equal(String(got["x-signed-in-address"]).toLowerCase(), wallet.address.toLowerCase());
      assert.equal(got[SIGN_IN_WITH_X], undefined, "the credential is not forwarded");
      const again = await fetch(url, { headers: { [SIGN_IN_WITH_X]: header } });
      assert.equal(again.status, 401);
      assert.equal(((await again.json()) as { error: string }).error, "sign_in_replayed");
      assert.equal(seen.length, 1, "refusals are not proxied");
      assert.equal((await fetch(`${base}/services/club/other`)).status, 402, "the rest of the offer is paid");
      assert.deepEqual(paid, ["club"]);
    } finally {
      close();
      upstream.closeAllConnections();
      upstream.close();
    }
  });

  it("catalogs show the route's gate: services.json, skill.md, openapi.json (401 + security scheme), the storefront", () => {
    const catalog = buildCatalog([held()], "https://seller.test");
    const routes = only(renderServicesJson(catalog).services).routes;
    assert.deepEqual(routes, [{ path: "/members/*", gate: "auth" }]);
    assert.match(
      renderSkillMd(catalog),
      /Sign-in routes \(a wallet signature, no payment\): `any \/services\/club\/members\/\*`/,
    );
    const openapi = renderOpenApi(catalog) as {
      paths: Record<string, Record<string, { responses: object; security?: unknown }>>;
    };
    const op = defined(openapi.paths["/services/club/members/{subpath}"]?.get, "the sign-in operation");
    assert.ok("401" in op.responses && !("402" in op.responses));
    assert.deepEqual(op.security, [{ signInWithX: [] }]);
    assert.match(
      renderStorefront(catalog),
      /<dt>Sign in<\/dt><dd><ul class="free signin"><li><code>\/<wbr>services\/<wbr>club\/<wbr>members\/<wbr><\/code><span class="note"> and everything below it/,
    );
  });

  it("config: gate auth is accepted; another gate is refused at preview naming the field", () => {
    const offer = (gate: string) => ({
      name: "club",
      upstream: { url: "http://127.0.0.1:9000" },
      payment: {
        network: "base-sepolia",
        payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        price: { perRequest: "0.001" },
      },
      routes: [{ path: "/members/*", gate }],
    });
    const ctx2 = { stack: "dev", secretKeys: new Set<string>() };
    const cfg = parseStackConfig({ offers: [offer("auth")] }, ctx2);
    assert.equal(only(only(cfg.offers).spec.routes ?? []).gate, "auth");
    try {
      parseStackConfig({ offers: [offer("login")] }, ctx2);
      assert.fail("accepted gate: login");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const issue = defined(
        err.issues.find((i) => i.path === "offers[0].routes[0].gate"),
        "an issue at the gate",
      );
      assert.match(issue.message, /auth/);
    }
  });
});
