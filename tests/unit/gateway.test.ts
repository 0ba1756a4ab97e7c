import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { chainIdOf, toCaip2 } from "../../api/chains";
import { exactJson } from "../../api/exactJson";
import { parseExact, registrationReadSchema } from "../../api/registration";
import { buildCatalog, curlCommand } from "../../controller/gateway/catalog/model";
import { renderOpenApi } from "../../controller/gateway/catalog/openapi";
import { renderRegistration } from "../../controller/gateway/catalog/registration";
import { renderServicesJson } from "../../controller/gateway/catalog/servicesJson";
import { renderSkillMd } from "../../controller/gateway/catalog/skillMd";
import { escapeHtml, renderStorefront } from "../../controller/gateway/catalog/storefront";
import { renderX402Discovery } from "../../controller/gateway/catalog/wellKnownX402";
import type { GatedRoute, PaymentGate, ProxyFn } from "../../controller/gateway/paymentGate";
import { stripHopByHop, upstreamRequestHeaders } from "../../controller/gateway/proxy";
import {
  buildRouteTable,
  decideRoute,
  type HeldOffer,
  matchOfferByHost,
  matchOfferByPath,
} from "../../controller/gateway/routing";
import { createInternalHandler, createPublicHandler, publicBase } from "../../controller/gateway/server";
import { RouteState } from "../../controller/gateway/state";
import type { ServiceOfferObject } from "../../controller/shared/kube";
import { at, defined, first, only } from "../harness/assertions";
import { offerObject } from "./runtimeFixtures";

const PAY_TO_REGISTRY = "0x8004A818BFB912233c491871b3d84c89A494BD9e";

describe("gateway: routing", () => {
  it("decides free or paid per declared route (globs, methods); anything else is paid", () => {
    const routes = [
      { path: "/v1/models", gate: "free" as const, methods: ["GET" as const] },
      { path: "/public/*", gate: "free" as const },
      { path: "/v1/*", gate: "paid" as const },
    ];
    assert.equal(decideRoute(routes, "/v1/models", "GET").gate, "free");
    assert.equal(decideRoute(routes, "/v1/models", "POST").gate, "paid");
    assert.equal(decideRoute(routes, "/public", "GET").gate, "free", "/x/* covers /x itself");
    assert.equal(decideRoute(routes, "/public/a/b", "DELETE").gate, "free");
    assert.equal(decideRoute(routes, "/publicity", "GET").gate, "paid");
    assert.equal(decideRoute(routes, "/other", "GET").gate, "paid");
    assert.equal(decideRoute(undefined, "/", "GET").gate, "paid");
    assert.equal(
      decideRoute([{ path: "/a.b", gate: "free" }], "/aXb", "GET").gate,
      "paid",
      "dots are literal",
    );
  });

  it("matches offers by path prefix (segment-wise) and by dedicated hostname", () => {
    const table = buildRouteTable(
      [
        offerObject("a", { path: "/services/a" }),
        offerObject("h", { path: "/services/h", hostname: "h.example.com" }),
      ],
      {},
    );
    assert.equal(matchOfferByPath(table, "/services/a")?.subPath, "/");
    assert.equal(matchOfferByPath(table, "/services/a/x/y")?.subPath, "/x/y");
    assert.equal(matchOfferByPath(table, "/services/ab"), undefined);
    assert.equal(matchOfferByHost(table, "H.example.com:8080")?.name, "h");
    assert.equal(matchOfferByHost(table, "other.example.com"), undefined);
  });

  it("holds valid, conflict-free offers and marks only current-generation Ready ones public", () => {
    const table = buildRouteTable(
      [
        offerObject("ready", { path: "/services/r" }, { ready: true }),
        offerObject("stale", { path: "/services/s" }, { ready: true, generation: 2, readyGeneration: 1 }),
        offerObject("loser", { path: "/services/r" }, { created: "2026-03-01T00:00:00Z", ready: true }),
      ],
      {},
    );
    assert.deepEqual(
      table.map((o) => [o.name, o.ready]),
      [
        ["ready", true],
        ["stale", false],
      ],
    );
  });
});

describe("gateway: proxy headers", () => {
  it("drops hop-by-hop headers, including those named in Connection", () => {
    const out = stripHopByHop({
      connection: "keep-alive, x-secret",
      "keep-alive": "5",
      "x-secret": "1",
      te: "trailers",
      accept: "a",
    });
    assert.deepEqual(out, { accept: "a" });
  });

  it("sets X-Forwarded-*, the upstream Host and a User-Agent when the client sent none", () => {
    const h = upstreamRequestHeaders(
      { host: "pub.example", "x-forwarded-for": "1.2.3.4", "payment-signature": "sig" },
      new URL("http://10.0.0.1:8000/x"),
      { clientIp: "5.6.7.8", proto: "https", host: "pub.example", prefix: "/services/a" },
      ["payment-signature"],
    );
    assert.equal(h.host, "10.0.0.1:8000");
    assert.equal(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8");
    assert.equal(h["x-forwarded-proto"], "https");
    assert.equal(h["x-forwarded-host"], "pub.example");
    assert.equal(h["x-forwarded-prefix"], "/services/a");
    assert.equal(h["user-agent"], "obol-stack-gateway/0.1");
    assert.equal(h["payment-signature"], undefined);
  });
});

describe("gateway: catalogs", () => {
  const hostile = offerObject("evil", {
    description: '<script>alert("x")</script> | pipes | and\nnewlines',
    listing: { weight: 5, category: "tools" },
    routes: [
      { path: "/free/*", gate: "free" },
      { path: "/premium", gate: "paid", price: { perRequest: "0.05" } },
    ],
  });
  const inference = offerObject("chat", {
    type: "inference",
    model: { name: "qwen3:0.6b" },
    payment: { ...(offerObject("x").spec as { payment: object }).payment, price: { perMTok: "0.25" } },
  });
  const offers = buildRouteTable([hostile, inference], {});
  const catalog = buildCatalog(offers, "https://shop.example/", {
    name: "Shop <b>",
    description: "Things",
    image: "https://shop.example/i.png",
    registrations: [
      { network: "eip155:84532", agentId: "12", registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e" },
    ],
  });

  it("escapes every piece of user data in the storefront", () => {
    const html = renderStorefront(catalog);
    assert.doesNotMatch(html, /<script>alert/);
    assert.match(html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
    assert.match(html, /<title>Shop &lt;b&gt;<\/title>/);
    assert.equal(escapeHtml(`'"<>&`), "&#39;&quot;&lt;&gt;&amp;");
    assert.match(renderStorefront(buildCatalog([], "http://x")), /No services available right now/);
  });

  it("says on the storefront how a per-token offer charges, with and without upto", () => {
    const fixed =
      /Rate 0\.25 USDC per 1M tokens; each call is charged a fixed 1,000 tokens, paid before it runs\./;
    assert.match(renderStorefront(catalog), fixed);
    const metered = offerObject("metered", {
      type: "inference",
      model: { name: "m" },
      payment: { ...(offerObject("x").spec as { payment: object }).payment, price: { perMTok: "0.25" } },
      schemes: ["exact", "upto"],
    });
    const html = renderStorefront(buildCatalog(buildRouteTable([metered], {}), "https://shop.example/"));
    assert.match(
      html,
      /pay only for the tokens used: they sign a maximum of max_tokens \(4,096 when absent\)/,
    );
    assert.match(html, /Other clients: each call is charged a fixed 1,000 tokens/);
    const openapi = renderOpenApi(buildCatalog(buildRouteTable([metered], {}), "https://shop.example/")) as {
      paths: Record<string, { post?: { "x-payment-info"?: { schemes?: { scheme: string }[] } } }>;
    };
    const ops = Object.values(openapi.paths).flatMap((p) => (p.post ? [p.post] : []));
    assert.deepEqual(
      ops[0]?.["x-payment-info"]?.schemes?.map((s) => s.scheme),
      ["exact", "upto"],
      "openapi.json names the schemes",
    );
  });

  it("lists offers by weight with exact atomic prices in services.json", () => {
    const json = renderServicesJson(catalog);
    assert.deepEqual(
      json.services.map((s) => s.name),
      ["evil", "chat"],
    );
    assert.equal(at(json.services, 0).priceAtomicUnits, "1000");
    assert.equal(at(json.services, 0).price, "0.001 USDC per request");
    assert.equal(at(json.services, 1).priceUnit, "perMTok");
    assert.equal(at(json.services, 1).price, "0.25 USDC per 1M tokens (0.00025 USDC per request)");
    assert.equal(at(json.services, 1).priceAtomicUnits, "250", "what the 402 asks: 1,000 tokens at the rate");
    assert.equal(at(json.services, 0).endpoint, "https://shop.example/services/evil");
    assert.equal(at(json.services, 0).networkName, "Base Sepolia");
  });

  it("lists a route's own price wherever the offer's price is listed", () => {
    const json = renderServicesJson(catalog);
    const routes = at(json.services, 0).routes;
    assert.equal(routes.find((r) => r.path === "/free/*")?.payments, undefined);
    const premium = only(defined(routes.find((r) => r.path === "/premium")?.payments, "premium payments"));
    assert.equal(premium.priceRaw, "0.05");
    assert.equal(premium.priceAtomicUnits, "50000", "what the route's 402 asks");
    assert.equal(at(json.services, 0).priceAtomicUnits, "1000", "the offer's price elsewhere");
    const doc = renderOpenApi(catalog) as {
      paths: Record<string, Record<string, { "x-payment-info"?: { amount: string } }>>;
    };
    assert.equal(doc.paths["/services/evil/premium"]?.get?.["x-payment-info"]?.amount, "50000");
    assert.equal(doc.paths["/services/evil/{subpath}"]?.get?.["x-payment-info"]?.amount, "1000");
    assert.match(
      renderSkillMd(catalog),
      /`any \/services\/evil\/premium` \(its own price: 0\.05 USDC per request on Base Sepolia.*`amount` 50000\)/,
    );
    assert.match(
      renderStorefront(catalog),
      /<dt>Priced<\/dt>.*evil\/<wbr>premium<\/code><span class="note">: 0\.05 USDC per call/s,
    );
    assert.ok(renderX402Discovery(catalog).resources.includes("https://shop.example/services/evil/premium"));
  });

  it("keeps skill.md tables intact and tells agents how to pay", () => {
    const md = renderSkillMd(catalog);
    assert.match(
      md,
      /\| evil \| http \| — \| 0\.001 USDC per request \| Base Sepolia \| https:\/\/shop\.example\/services\/evil \|/,
    );
    assert.match(md, /\\\| pipes \\\| and newlines/);
    assert.match(md, /PAYMENT-SIGNATURE/);
    assert.match(md, /payment-identifier.*the same `PAYMENT-SIGNATURE` again: you get the first answer/);
    assert.match(md, /Free routes: `any \/services\/evil\/free\/\*`/);
  });

  it("documents 402 only on paid operations in openapi.json", () => {
    const doc = renderOpenApi(catalog) as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    assert.equal(doc.openapi, "3.1.0");
    const get = (path: string) => defined(doc.paths[path]?.get, `GET ${path}`);
    assert.ok(get("/services/evil/{subpath}").responses["402"]);
    assert.equal(get("/services/evil/free/{subpath}").responses["402"], undefined);
  });

  it("renders ERC-8004 registration-v1, and a tombstone without ready offers", () => {
    const doc = renderRegistration(catalog);
    assert.equal(doc.type, "https://eips.ethereum.org/EIPS/eip-8004#registration-v1");
    assert.deepEqual(doc.registrations, [
      { agentId: 12n, agentRegistry: "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e" },
    ]);
    assert.equal(doc.image, "https://shop.example/i.png");
    assert.deepEqual(doc.services, [
      { name: "web", endpoint: "https://shop.example/" },
      { name: "evil", endpoint: "https://shop.example/services/evil", type: "http" },
      {
        name: "chat",
        endpoint: "https://shop.example/services/chat",
        type: "inference",
        model: "qwen3:0.6b",
      },
    ]);
    assert.equal(doc.active, true);
    const tomb = renderRegistration(buildCatalog([], "https://shop.example", catalog.identity));
    assert.equal(tomb.active, false);
    assert.equal(tomb.x402Support, false);
    assert.deepEqual(tomb.services, []);
    assert.equal(tomb.registrations.length, 1, "the on-chain identity is still named");
  });

  it("carries every field ERC-8004 says SHOULD be present, and agent and chain ids exactly", () => {
    const big = buildCatalog([], "https://shop.example", {
      name: "Big",
      description: "",
      registrations: [
        {
          network: "eip155:9007199254740993",
          agentId: "18446744073709551617",
          registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e",
        },
      ],
    });
    const text = exactJson(renderRegistration(big));
    assert.match(text, /"agentId":18446744073709551617,"agentRegistry":"eip155:9007199254740993:0x8004/);
    const doc = JSON.parse(text) as Record<string, unknown>;
    for (const field of ["type", "name", "description", "image", "services", "registrations"])
      assert.ok(field in doc, `${field} is present`);
    assert.match(String(doc.image), /^data:image\/svg\+xml;base64,/, "a default image when none is set");
    assert.equal(toCaip2("eip155:9007199254740993"), "eip155:9007199254740993");
    assert.equal(chainIdOf("eip155:9007199254740993"), 9007199254740993n);
  });

  it("writes uint256 agent ids with every digit, and reads them back exactly", () => {
    const big = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    const doc = renderRegistration(
      buildCatalog([], "https://shop.example", {
        name: "n",
        description: "",
        registrations: [{ network: "eip155:84532", agentId: big, registry: PAY_TO_REGISTRY }],
      }),
    );
    const text = exactJson(doc, 2);
    assert.match(text, new RegExp(`"agentId": ${big},`));
    const read = registrationReadSchema.parse(parseExact(text));
    assert.equal(first(read.registrations).agentId, BigInt(big));
    // A plain JSON.parse would have rounded it: the reason for parseExact.
    assert.notEqual(BigInt(Math.round(Number(big))), BigInt(big));
  });

  it("quotes example commands for the shell", () => {
    assert.equal(curlCommand({ method: "GET", url: "http://x/it's" }), `curl -i 'http://x/it'\\''s'`);
  });
});

describe("gateway: request pipeline (in process, loopback upstream)", () => {
  let upstream: http.Server;
  let gateway: http.Server;
  let internal: http.Server;
  let base: string;
  const gateCalls: { offer: string; route: GatedRoute }[] = [];

  /** A stand-in for the x402 gate: pays everything, adds a receipt header after a 2xx. */
  class RecordingGate implements PaymentGate {
    readonly name = "recording";
    async handle(
      req: http.IncomingMessage,
      _res: http.ServerResponse,
      offer: HeldOffer,
      route: GatedRoute,
      proxy: ProxyFn,
    ) {
      gateCalls.push({ offer: offer.name, route });
      const outcome = await proxy({
        stripRequestHeaders: ["payment-signature"],
        beforeResponse: (head) => (head.status < 300 ? { "payment-response": "receipt" } : undefined),
      });
      assert.equal(outcome.completed, true);
      assert.equal(req.headers["payment-signature"], "sig");
    }
  }

  const listen = async (server: http.Server) => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  };

  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.url?.startsWith("/base/stream")) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: first\n\n");
        setTimeout(() => res.end("data: last\n\n"), 300);
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () =>
        res.writeHead(200, { "content-type": "application/json", "x-upstream": "yes" }).end(
          JSON.stringify({
            url: req.url,
            signature: req.headers["payment-signature"] ?? null,
            body: Buffer.concat(chunks).toString(),
          }),
        ),
      );
    });
    const upPort = await listen(upstream);
    const objects: ServiceOfferObject[] = [
      offerObject(
        "a",
        {
          upstream: { url: `http://127.0.0.1:${upPort}/base`, healthPath: "/h" },
          routes: [
            { path: "/free/*", gate: "free" },
            { path: "/stream", gate: "free" },
          ],
        },
        { ready: true },
      ),
      offerObject("notready", { upstream: { url: `http://127.0.0.1:${upPort}`, healthPath: "/h" } }),
    ];
    const state = new RouteState(
      { offers: () => objects, identity: () => undefined, synced: () => true, version: () => 1 },
      {},
    );
    const opts = { state, gate: new RecordingGate(), log: () => undefined };
    gateway = http.createServer(createPublicHandler(opts));
    internal = http.createServer(createInternalHandler(opts));
    base = `http://127.0.0.1:${await listen(gateway)}`;
    await listen(internal);
  });

  after(() => {
    for (const s of [upstream, gateway, internal]) s.closeAllConnections();
    for (const s of [upstream, gateway, internal]) s.close();
  });

  it("proxies free routes directly, stripping the offer prefix", async () => {
    const res = await fetch(`${base}/services/a/free/x?q=1`, { method: "POST", body: "hello" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { url: "/base/free/x?q=1", signature: null, body: "hello" });
    assert.equal(gateCalls.length, 0);
  });

  it("streams: the first event arrives before the upstream finishes", async () => {
    const started = Date.now();
    const res = await fetch(`${base}/services/a/stream`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(Buffer.from(first.value!).toString(), /data: first/);
    assert.ok(Date.now() - started < 250, "the first chunk was not held back until the end");
    await reader.cancel();
  });

  it("sends paid routes through the PaymentGate, which can proxy and add headers before the client sees them", async () => {
    const res = await fetch(`${base}/services/a/paid`, { headers: { "payment-signature": "sig" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("payment-response"), "receipt");
    assert.equal(res.headers.get("x-upstream"), "yes");
    const echoed = (await res.json()) as { signature: string | null };
    assert.equal(echoed.signature, null, "the payment header is not forwarded upstream");
    assert.equal(at(gateCalls, 0).offer, "a");
    assert.equal(at(gateCalls, 0).route.gate, "paid");
    assert.equal(at(gateCalls, 0).route.resourceUrl, `${base}/services/a/paid`);
  });

  it("fails closed: not-ready offers, unknown paths and internal paths are 404 on the public port", async () => {
    for (const p of ["/services/notready/x", "/nope", "/internal/routes", "/services"]) {
      assert.equal((await fetch(`${base}${p}`)).status, 404, p);
    }
    assert.equal((await fetch(`${base}/skill.md`, { method: "POST" })).status, 405);
  });

  it("derives the public base from Host unless configured, ignoring malformed hosts", () => {
    const req = {
      headers: { host: "shop.example:8443", "x-forwarded-proto": "https" },
    } as unknown as http.IncomingMessage;
    assert.equal(publicBase(req, undefined), "https://shop.example:8443");
    assert.equal(publicBase(req, "https://fixed.example/"), "https://fixed.example");
    const evil = { headers: { host: "a<b>" } } as unknown as http.IncomingMessage;
    assert.equal(publicBase(evil, undefined), "http://localhost");
  });
});
