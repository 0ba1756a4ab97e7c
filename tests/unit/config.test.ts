import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { CDP_FACILITATOR_URL } from "../../api/contract";
import { ConfigError, type ParseContext, parseStackConfig } from "../../program/config/parse";
import { at } from "../harness/assertions";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ctx: ParseContext = { stack: "dev", secretKeys: new Set() };

function offer(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "echo",
    type: "http",
    upstream: { url: "http://127.0.0.1:9000", healthPath: "/health" },
    payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
    ...overrides,
  };
}

function expectIssue(
  raw: Record<string, unknown>,
  path: string,
  pattern: RegExp,
  context: ParseContext = ctx,
): void {
  try {
    parseStackConfig(raw, context);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    const hit = err.issues.find((i) => i.path === path);
    assert.ok(hit, `no issue at ${path}; issues: ${JSON.stringify(err.issues)}`);
    assert.match(hit.message, pattern);
    assert.match(
      err.message,
      new RegExp(path.replace(/[[\].]/g, "\\$&")),
      "the thrown message names the field",
    );
    return;
  }
  assert.fail(`config was accepted, expected an issue at ${path}`);
}

describe("stack config", () => {
  it("normalizes a good config: CAIP-2, checksummed payTo, default USDC, default path", () => {
    const cfg = parseStackConfig(
      {
        offers: [
          offer({
            payment: { network: "base-sepolia", payTo: PAY_TO.toLowerCase(), price: { perRequest: "0.001" } },
          }),
        ],
      },
      ctx,
    );
    const spec = at(cfg.offers, 0).spec;
    assert.equal(spec.payment.network, "eip155:84532");
    assert.equal(spec.payment.payTo, PAY_TO);
    assert.equal(spec.payment.asset.address, "0x036CbD53842c5426634e7929541eC2318f3dCF7e");
    assert.equal(spec.payment.asset.eip712Name, "USDC");
    assert.equal(spec.path, "/services/echo");
    assert.equal(cfg.cluster.mode, "k3d");
    assert.equal(cfg.cluster.name, "obol-dev");
    assert.deepEqual(cfg.secrets, []);
  });

  it("accepts a plain ERC-20 paid through Permit2 without an EIP-712 name; an EIP-3009 token needs one", () => {
    const asset = { address: "0x4200000000000000000000000000000000000042", symbol: "TDOL", decimals: 18 };
    const payment = (extra: Record<string, unknown>) => ({
      network: "base-sepolia",
      payTo: PAY_TO,
      price: { perRequest: "0.5" },
      asset: { ...asset, ...extra },
    });
    const cfg = parseStackConfig(
      { offers: [offer({ payment: payment({ transferMethod: "permit2" }) })] },
      ctx,
    );
    assert.deepEqual(
      { ...at(cfg.offers, 0).spec.payment.asset },
      { ...asset, transferMethod: "permit2", eip712Name: "TDOL", eip712Version: "2" },
    );
    expectIssue(
      { offers: [offer({ payment: payment({}) })] },
      "offers[0].payment.asset.eip712Name",
      /permit2/,
    );
  });

  it("reports every problem at once", () => {
    try {
      parseStackConfig(
        {
          offers: [
            offer({ name: "Bad_Name" }),
            offer({ payment: { network: "nope", payTo: "0x1", price: {} } }),
          ],
        },
        ctx,
      );
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.issues.length >= 4, JSON.stringify(err.issues));
    }
  });

  describe("rejects bad configs, naming the field and the fix", () => {
    const cases: [string, Record<string, unknown>, string, RegExp, ParseContext?][] = [
      [
        "a malformed payTo",
        {
          offers: [
            offer({ payment: { network: "base-sepolia", payTo: "0x1234", price: { perRequest: "0.001" } } }),
          ],
        },
        "offers[0].payment.payTo",
        /not an address/,
      ],
      [
        "a zero-address payTo",
        {
          offers: [
            offer({
              payment: {
                network: "base-sepolia",
                payTo: `0x${"0".repeat(40)}`,
                price: { perRequest: "0.001" },
              },
            }),
          ],
        },
        "offers[0].payment.payTo",
        /zero address/,
      ],
      [
        "a bad EIP-55 checksum",
        {
          offers: [
            offer({
              payment: {
                network: "base-sepolia",
                payTo: "0x70997970c51812dc3A010C7d01b50e0d17dc79C8",
                price: { perRequest: "0.001" },
              },
            }),
          ],
        },
        "offers[0].payment.payTo",
        /checksum/,
      ],
      [
        "price 0",
        {
          offers: [
            offer({ payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0" } } }),
          ],
        },
        "offers[0].payment.price.perRequest",
        /greater than 0/,
      ],
      [
        "a negative price",
        {
          offers: [
            offer({ payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "-1" } } }),
          ],
        },
        "offers[0].payment.price.perRequest",
        /not a positive decimal/,
      ],
      [
        "an unquoted numeric price",
        {
          offers: [
            offer({ payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: 0.001 } } }),
          ],
        },
        "offers[0].payment.price.perRequest",
        /quoted strings/,
      ],
      [
        "more precision than the token",
        {
          offers: [
            offer({
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.0000001" } },
            }),
          ],
        },
        "offers[0].payment.price.perRequest",
        /6 decimal places/,
      ],
      [
        "both price kinds",
        {
          offers: [
            offer({
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "1", perMTok: "2" } },
            }),
          ],
        },
        "offers[0].payment.price",
        /exactly one/,
      ],
      [
        "upto on a per-request price",
        {
          offers: [
            offer({
              type: "inference",
              model: { name: "m" },
              schemes: ["exact", "upto"],
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
            }),
          ],
        },
        "offers[0].schemes",
        /every payment needs price.perMTok/,
      ],
      [
        "batch-settlement on a per-token price",
        {
          offers: [
            offer({
              type: "inference",
              model: { name: "m" },
              schemes: ["batch-settlement"],
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perMTok: "1" } },
            }),
          ],
        },
        "offers[0].schemes",
        /batch-settlement.*needs price.perRequest/,
      ],
      [
        "channel terms without batch-settlement",
        {
          offers: [
            offer({
              channels: { claimIntervalSeconds: 30 },
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
            }),
          ],
        },
        "offers[0].channels",
        /applies to the "batch-settlement" scheme only/,
      ],
      [
        "a channel claim amount of 0",
        {
          offers: [
            offer({
              schemes: ["exact", "batch-settlement"],
              channels: { claimAmount: "0" },
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
            }),
          ],
        },
        "offers[0].channels.claimAmount",
        /./,
      ],
      [
        "upto on an http offer",
        {
          offers: [
            offer({
              schemes: ["upto"],
              payment: { network: "base-sepolia", payTo: PAY_TO, price: { perMTok: "1" } },
            }),
          ],
        },
        "offers[0].schemes",
        /needs type: inference/,
      ],
      [
        "an unknown chain",
        {
          offers: [
            offer({ payment: { network: "base-goerli", payTo: PAY_TO, price: { perRequest: "0.001" } } }),
          ],
        },
        "offers[0].payment.network",
        /unknown network "base-goerli".*CAIP-2/,
      ],
      [
        "a local chain without an asset",
        {
          offers: [
            offer({ payment: { network: "eip155:31337", payTo: PAY_TO, price: { perRequest: "1" } } }),
          ],
        },
        "offers[0].payment.asset",
        /no default token/,
      ],
      [
        "a duplicate offer name",
        { offers: [offer(), offer({ path: "/services/other" })] },
        "offers[1].name",
        /already used by offers\[0\]/,
      ],
      [
        "a duplicate path",
        { offers: [offer(), offer({ name: "echo2", path: "/services/echo" })] },
        "offers[1].path",
        /overlaps/,
      ],
      [
        "a nested path",
        { offers: [offer(), offer({ name: "echo2", path: "/services/echo/v2" })] },
        "offers[1].path",
        /overlaps/,
      ],
      [
        "a reserved path",
        { offers: [offer({ path: "/.well-known/agent-registration.json" })] },
        "offers[0].path",
        /reserved/,
      ],
      ["the catalog path", { offers: [offer({ path: "/api/services.json" })] }, "offers[0].path", /reserved/],
      ["an invalid offer name", { offers: [offer({ name: "My_Offer" })] }, "offers[0].name", /DNS label/],
      [
        "an upstream with both service and url",
        { offers: [offer({ upstream: { url: "http://x", service: "svc", port: 80 } })] },
        "offers[0].upstream",
        /exactly one/,
      ],
      [
        "an inference offer without a model",
        { offers: [offer({ type: "inference" })] },
        "offers[0].model",
        /model\.name/,
      ],
      ["a misspelled field", { offers: [offer({ prcie: "1" })] }, "offers[0]", /unknown field "prcie"/],
      [
        "a k3d name over 32 characters",
        { cluster: { name: "obol-stack-post490-buy-external-bob" } },
        "cluster.name",
        /35 characters; k3d allows at most 32/,
      ],
      [
        "a long stack name making the default k3d name too long",
        {},
        "cluster.name",
        /at most 32/,
        { stack: "a-very-long-stack-name-for-testing", secretKeys: new Set() },
      ],
      [
        "a plaintext secret",
        { cluster: { mode: "kubeconfig" }, kubeconfig: "apiVersion: v1" },
        "kubeconfig",
        /plaintext.*--secret/,
      ],
      [
        "kubeconfig mode without a kubeconfig",
        { cluster: { mode: "kubeconfig" } },
        "kubeconfig",
        /pulumi config set --secret kubeconfig/,
      ],
      [
        "a named tunnel without a hostname",
        { tunnel: { mode: "named" }, tunnelToken: "t" },
        "tunnel.hostname",
        /public hostname/,
        { stack: "dev", secretKeys: new Set(["tunnelToken"]) },
      ],
      [
        "registration behind a quick tunnel",
        { identity: { register: true }, identitySignerKey: "k", offers: [offer()] },
        "identity.register",
        /quick-tunnel URLs change/,
        { stack: "dev", secretKeys: new Set(["identitySignerKey"]) },
      ],
      [
        "a floating image tag",
        { images: { runtime: "ghcr.io/x/runtime:latest" } },
        "images.runtime",
        /not pinned/,
      ],
      [
        "a hosted facilitator over plain http",
        { facilitator: { mode: "hosted", url: "http://facilitator.example.com" } },
        "facilitator.url",
        /https/,
      ],
      [
        "a self-run facilitator without its key",
        { facilitator: { mode: "self" } },
        "facilitatorSignerKey",
        /--secret facilitatorSignerKey/,
      ],
      [
        "a purchase with a numeric budget",
        {
          purchases: [
            {
              name: "p",
              endpoint: "https://s.example.com/services/x",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01" },
              budget: { maxPerRequest: 1 },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].budget.maxPerRequest",
        /quoted/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase whose RPC URL is not http(s)",
        {
          purchases: [
            {
              name: "p",
              endpoint: "https://s.example.com/services/x",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "wss://rpc.example.com" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].payment.rpcUrl",
        /http\(s\) JSON-RPC URL of base-sepolia/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase naming neither an endpoint nor an agent",
        {
          purchases: [
            {
              name: "p",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0]",
        /exactly one of endpoint \(the seller's offer URL\) or agent \(its ERC-8004 id/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase by agent whose RPC URL is not http(s)",
        {
          purchases: [
            {
              name: "p",
              agent: {
                id: "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e#1",
                rpcUrl: "ws://127.0.0.1:8545",
              },
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].agent.rpcUrl",
        /http\(s\) JSON-RPC URL of eip155:84532/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase by agent whose registry has a bad checksum",
        {
          purchases: [
            {
              name: "p",
              agent: "eip155:84532:0x8004a818BFB912233c491871b3d84c89A494BD9e#1",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].agent",
        /bad EIP-55 checksum.*0x8004A818BFB912233c491871b3d84c89A494BD9e/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase naming both an endpoint and an agent",
        {
          purchases: [
            {
              name: "p",
              endpoint: "https://s.example.com/services/x",
              agent: "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e#1",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0]",
        /exactly one of endpoint .* or agent/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase whose agent id is not eip155:<chainId>:<registry>#<agentId>",
        {
          purchases: [
            {
              name: "p",
              agent: "84532:0x8004A818BFB912233c491871b3d84c89A494BD9e/1",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].agent",
        /eip155:<chainId>:<IdentityRegistry address>#<agentId>/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase whose agent id does not fit in a uint256",
        {
          purchases: [
            {
              name: "p",
              agent: { id: `eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e#${"9".repeat(80)}` },
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].agent.id",
        /uint256/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
      [
        "a purchase by agent on another chain without an RPC URL for it",
        {
          purchases: [
            {
              name: "p",
              agent: "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432#3",
              model: "m",
              payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
              budget: { maxPerRequest: "0.01" },
            },
          ],
          buyerSignerKey: "k",
        },
        "purchases[0].agent",
        /reads the agent's tokenURI on eip155:8453: give a JSON-RPC URL with agent: \{id, rpcUrl\}/,
        { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
      ],
    ];
    for (const [what, raw, path, pattern, context] of cases) {
      it(what, () => expectIssue(raw, path, pattern, context));
    }
  });

  it("names a seller by its ERC-8004 agent id: exact uint256, checksummed registry, the payment chain's RPC", () => {
    const big = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    const cfg = parseStackConfig(
      {
        purchases: [
          {
            name: "alice",
            agent: `eip155:84532:0x8004a818bfb912233c491871b3d84c89a494bd9e#${big}`,
            model: "qwen",
            payment: { network: "base-sepolia", maxPrice: "0.01", rpcUrl: "http://127.0.0.1:8545" },
            budget: { maxPerRequest: "0.01" },
          },
          {
            name: "bob",
            agent: {
              id: "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432#007",
              rpcUrl: "http://127.0.0.1:9545",
              service: "qwen-per-token",
            },
            model: "qwen-large",
            payment: { network: "base-sepolia", maxPrice: "0.01" },
            budget: { maxPerRequest: "0.01" },
          },
        ],
        buyerSignerKey: "k",
      },
      { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) },
    );
    assert.deepEqual(at(cfg.purchases, 0).agent, {
      network: "eip155:84532",
      registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e",
      agentId: big,
      rpcUrl: "http://127.0.0.1:8545",
    });
    assert.equal(at(cfg.purchases, 0).endpoint, undefined);
    assert.deepEqual(at(cfg.purchases, 1).agent, {
      network: "eip155:8453",
      registry: "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432",
      agentId: "7",
      rpcUrl: "http://127.0.0.1:9545",
      service: "qwen-per-token",
    });
  });

  it("accepts secrets stored as secrets and derives the named tunnel's public URL", () => {
    const cfg = parseStackConfig(
      {
        tunnel: { mode: "named", hostname: "api.example.com" },
        tunnelToken: "token",
        identity: { register: true, rpcUrls: { "base-sepolia": "http://127.0.0.1:8545" } },
        identitySignerKey: "key",
        offers: [offer()],
      },
      { stack: "dev", secretKeys: new Set(["tunnelToken", "identitySignerKey"]) },
    );
    assert.equal(cfg.publicBaseUrl, "https://api.example.com");
    assert.equal(
      cfg.identity.registration?.agentURI,
      "https://api.example.com/.well-known/agent-registration.json",
    );
    assert.deepEqual(cfg.identity.registration?.chains, [
      {
        network: "eip155:84532",
        rpcUrl: "http://127.0.0.1:8545",
        registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e",
      },
    ]);
    assert.deepEqual(cfg.secrets.sort(), ["identitySignerKey", "tunnelToken"]);
  });

  describe("every value the runtime parses is validated at preview (issue 13 defect 10)", () => {
    const withBuyer: ParseContext = { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) };
    const purchase = (payment: Record<string, unknown>, budget: Record<string, unknown>) => ({
      purchases: [
        {
          name: "p",
          endpoint: "https://s.example.com/services/x",
          model: "m",
          payment: { network: "base-sepolia", maxPrice: "0.01", ...payment },
          budget: { maxPerRequest: "0.01", ...budget },
        },
      ],
      buyerSignerKey: "k",
    });
    const cases: [string, Record<string, unknown>, string, RegExp, ParseContext?][] = [
      [
        "a budget finer than the token's smallest unit (USDC has 6 decimals)",
        purchase({}, { maxTotal: "0.0000001" }),
        "purchases[0].budget.maxTotal",
        /more than 6 decimal places/,
        withBuyer,
      ],
      [
        "a maxPrice finer than a custom token's decimals",
        purchase(
          { asset: "0x4200000000000000000000000000000000000042", decimals: 2, maxPrice: "0.001" },
          { maxPerRequest: "1" },
        ),
        "purchases[0].payment.maxPrice",
        /more than 2 decimal places/,
        withBuyer,
      ],
      [
        "maxPerRequest above maxTotal",
        purchase({}, { maxPerRequest: "0.01", maxTotal: "0.005" }),
        "purchases[0].budget.maxPerRequest",
        /above budget\.maxTotal 0\.005.*lower budget\.maxPerRequest or raise budget\.maxTotal/,
        withBuyer,
      ],
      [
        "maxPerRequest above maxPerDay",
        purchase({}, { maxPerRequest: "0.01", maxPerDay: "0.001" }),
        "purchases[0].budget.maxPerRequest",
        /above budget\.maxPerDay/,
        withBuyer,
      ],
      [
        "maxPrice above maxPerRequest",
        purchase({ maxPrice: "0.02" }, { maxPerRequest: "0.01" }),
        "purchases[0].payment.maxPrice",
        /above budget\.maxPerRequest 0\.01.*always be refused/,
        withBuyer,
      ],
      [
        "a seller endpoint the buyer cannot parse as a URL",
        { ...purchase({}, {}), purchases: [{ ...purchase({}, {}).purchases[0], endpoint: "http://[::1" }] },
        "purchases[0].endpoint",
        /is not a URL/,
        withBuyer,
      ],
      [
        "two purchases of the same model (the buyer would only ever use the first)",
        {
          ...purchase({}, {}),
          purchases: [purchase({}, {}).purchases[0], { ...purchase({}, {}).purchases[0], name: "q" }],
        },
        "purchases[1].model",
        /already bought by purchases\[0\]/,
        withBuyer,
      ],
      [
        "an upstream URL the gateway cannot parse",
        { offers: [offer({ upstream: { url: "http://127.0.0.1:99999" } })] },
        "offers[0].upstream.url",
        /is not a URL/,
      ],
      [
        "a route path the gateway's route matcher rejects",
        { offers: [offer({ routes: [{ path: "health", gate: "free" }] })] },
        "offers[0].routes[0].path",
        /must start with \//,
      ],
      [
        "an upstream Service name longer than a DNS label",
        { offers: [offer({ upstream: { service: "s".repeat(64), port: 80 } })] },
        "offers[0].upstream.service",
        /at most 63 characters/,
      ],
      [
        "a model name the ServiceOffer schema rejects (over 256 characters)",
        { offers: [offer({ type: "inference", model: { name: "m".repeat(257) } })] },
        "offers[0].model.name",
        /the cluster would reject this ServiceOffer/,
      ],
      [
        "a litellm model under paid/ (routed to the buyer)",
        { litellm: { models: [{ name: "paid/gpt", model: "openai/gpt-4o" }] } },
        "litellm.models[0].name",
        /paid\//,
      ],
      [
        "a hosted facilitator URL that is not a URL",
        { facilitator: { mode: "hosted", url: "https://exa mple.com" } },
        "facilitator.url",
        /is not a URL/,
      ],
    ];
    for (const [what, raw, path, pattern, context] of cases) {
      it(what, () => expectIssue(raw, path, pattern, context));
    }
  });

  describe("a self-run facilitator (issue 13 defect 7)", () => {
    const withKey: ParseContext = { stack: "dev", secretKeys: new Set(["facilitatorSignerKey"]) };
    it("without facilitator.rpcUrl is rejected at preview, naming the field (it would crash-loop)", () => {
      expectIssue(
        { facilitator: { mode: "self" }, facilitatorSignerKey: "k" },
        "facilitator.rpcUrl",
        /required when facilitator\.mode is self: the JSON-RPC URL/,
        withKey,
      );
    });
    it("with an RPC URL carries it in the type (no optional URL for the program to assume)", () => {
      const cfg = parseStackConfig(
        { facilitator: { mode: "self", rpcUrl: "https://sepolia.base.org" }, facilitatorSignerKey: "k" },
        withKey,
      );
      assert.deepEqual(cfg.facilitator, { mode: "self", rpcUrl: "https://sepolia.base.org" });
      assert.deepEqual(cfg.secrets, ["facilitatorSignerKey"]);
    });
    it("a hosted one may require a bearer token: facilitatorToken, a secret, is passed on; a self-run one's is generated", () => {
      const hosted = parseStackConfig(
        {
          facilitator: { mode: "hosted", url: "https://facilitator.example.com" },
          facilitatorToken: "tok.en-1_~+/=",
        },
        { stack: "dev", secretKeys: new Set(["facilitatorToken"]) },
      );
      assert.deepEqual(hosted.secrets, ["facilitatorToken"]);
      expectIssue(
        { facilitator: { mode: "hosted" }, facilitatorToken: "tok" },
        "facilitatorToken",
        /stored in plaintext/,
      );
      expectIssue(
        { facilitator: { mode: "hosted" }, facilitatorToken: "two words" },
        "facilitatorToken",
        /^must be a bearer token:.*not shown\)$/,
        { stack: "dev", secretKeys: new Set(["facilitatorToken"]) },
      );
      expectIssue(
        {
          facilitator: { mode: "self", rpcUrl: "https://sepolia.base.org" },
          facilitatorSignerKey: "k",
          facilitatorToken: "t",
        },
        "facilitatorToken",
        /generated by the stack.*pulumi config rm facilitatorToken/,
        { stack: "dev", secretKeys: new Set(["facilitatorSignerKey", "facilitatorToken"]) },
      );
    });
    it("a hosted one gets the default URL", () => {
      assert.deepEqual(parseStackConfig({}, ctx).facilitator, {
        mode: "hosted",
        url: "https://x402.org/facilitator",
      });
    });
  });

  describe("Coinbase's facilitator (CDP API key)", () => {
    const cdp: ParseContext = { stack: "dev", secretKeys: new Set(["cdpApiKeyId", "cdpApiKeySecret"]) };
    const edKey = Buffer.alloc(64, 7).toString("base64");
    const pkcs8 = crypto
      .generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "pem", type: "pkcs8" })
      .toString();
    it("a hosted facilitator with both secrets signs with the key, at Coinbase's URL by default", () => {
      for (const secret of [edKey, pkcs8]) {
        const cfg = parseStackConfig(
          { cdpApiKeyId: "organizations/o/apiKeys/k", cdpApiKeySecret: secret },
          cdp,
        );
        assert.deepEqual(cfg.facilitator, { mode: "hosted", url: CDP_FACILITATOR_URL, auth: "cdp" });
        assert.deepEqual([...cfg.secrets].sort(), ["cdpApiKeyId", "cdpApiKeySecret"]);
      }
    });
    it("names what is missing or in conflict, and never shows the key", () => {
      expectIssue({ cdpApiKeyId: "k" }, "cdpApiKeySecret", /with cdpApiKeyId, to sign calls/, {
        stack: "dev",
        secretKeys: new Set(["cdpApiKeyId"]),
      });
      expectIssue(
        { facilitator: { url: "https://facilitator.example.com" }, cdpApiKeyId: "k", cdpApiKeySecret: edKey },
        "facilitator.url",
        /signs calls to https:\/\/api\.cdp\.coinbase\.com\/platform\/v2\/x402 only.*remove facilitator\.url/,
        cdp,
      );
      // Coinbase's host on another path: the signatures name the path too.
      expectIssue(
        {
          facilitator: { url: "https://api.cdp.coinbase.com/platform/v1/x402" },
          cdpApiKeyId: "k",
          cdpApiKeySecret: edKey,
        },
        "facilitator.url",
        /signs calls to https:\/\/api\.cdp\.coinbase\.com\/platform\/v2\/x402 only/,
        cdp,
      );
      // Its own URL, spelled out (a trailing slash too), is fine, and used as the default spells it.
      for (const url of [CDP_FACILITATOR_URL, `${CDP_FACILITATOR_URL}/`])
        assert.deepEqual(
          parseStackConfig({ facilitator: { url }, cdpApiKeyId: "k", cdpApiKeySecret: edKey }, cdp)
            .facilitator,
          { mode: "hosted", url: CDP_FACILITATOR_URL, auth: "cdp" },
        );
      expectIssue(
        { cdpApiKeyId: "k", cdpApiKeySecret: edKey, facilitatorToken: "tok" },
        "facilitatorToken",
        /takes a CDP API key .* not a bearer token/,
        { stack: "dev", secretKeys: new Set(["cdpApiKeyId", "cdpApiKeySecret", "facilitatorToken"]) },
      );
      expectIssue(
        {
          facilitator: { mode: "self", rpcUrl: "https://sepolia.base.org" },
          facilitatorSignerKey: "k",
          cdpApiKeyId: "k",
          cdpApiKeySecret: edKey,
        },
        "cdpApiKeyId",
        /for Coinbase's hosted facilitator; remove it/,
        { stack: "dev", secretKeys: new Set(["facilitatorSignerKey", "cdpApiKeyId", "cdpApiKeySecret"]) },
      );
      expectIssue({ cdpApiKeyId: "k", cdpApiKeySecret: edKey }, "cdpApiKeySecret", /stored in plaintext/, {
        stack: "dev",
        secretKeys: new Set(["cdpApiKeyId"]),
      });
      const sec1 = crypto
        .generateKeyPairSync("ec", { namedCurve: "P-256" })
        .privateKey.export({ format: "pem", type: "sec1" })
        .toString();
      expectIssue(
        { cdpApiKeyId: "k", cdpApiKeySecret: sec1 },
        "cdpApiKeySecret",
        /SEC1 PEM.*openssl pkcs8 -topk8 -nocrypt/,
        cdp,
      );
      for (const bad of [
        "c2hvcnQ=",
        `${edKey}x`,
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----",
      ]) {
        try {
          parseStackConfig({ cdpApiKeyId: "k", cdpApiKeySecret: bad }, cdp);
          assert.fail("accepted");
        } catch (err) {
          assert.ok(err instanceof ConfigError);
          const hit = err.issues.find((i) => i.path === "cdpApiKeySecret");
          assert.match(
            hit?.message ?? "",
            /PKCS#8 PEM, or an Ed25519 key as base64 of 64 bytes \(the value is not shown\)/,
          );
          assert.ok(!JSON.stringify(err.issues).includes(bad), "the value is not shown");
        }
      }
      expectIssue(
        { cdpApiKeyId: "has space", cdpApiKeySecret: edKey },
        "cdpApiKeyId",
        /printable, no spaces/,
        cdp,
      );
    });
  });

  describe("litellm.models[].apiKeySecret (issue 13 defect 11)", () => {
    const models = {
      litellm: { models: [{ name: "gpt", model: "openai/gpt-4o-mini", apiKeySecret: "openaiApiKey" }] },
    };
    it("accepts a custom secret key as in the README example", () => {
      const cfg = parseStackConfig(
        { ...models, openaiApiKey: "<set>" },
        { stack: "dev", secretKeys: new Set(["openaiApiKey"]) },
      );
      assert.deepEqual(cfg.litellm.models, [
        { name: "gpt", model: "openai/gpt-4o-mini", apiKeySecret: "openaiApiKey" },
      ]);
    });
    it("tells to set it as a secret when it is missing, and rejects it in plaintext", () => {
      expectIssue(models, "litellm.models[0].apiKeySecret", /pulumi config set --secret openaiApiKey/);
      expectIssue({ ...models, openaiApiKey: "sk-123" }, "openaiApiKey", /plaintext.*--secret openaiApiKey/);
    });
    it("still rejects a key that no model names", () => {
      expectIssue({ openaiApiKey: "<set>" }, "openaiApiKey", /unknown field "openaiApiKey"/, {
        stack: "dev",
        secretKeys: new Set(["openaiApiKey"]),
      });
    });
  });

  describe("messages (issue 13 defect 12)", () => {
    it("an unknown top-level key is reported under its own name with a suggestion", () => {
      expectIssue({ ofers: [] }, "ofers", /unknown field "ofers": did you mean "offers"/);
      expectIssue({ tunel: { mode: "none" } }, "tunel", /did you mean "tunnel"/);
    });
    it("an unknown nested field suggests the closest known field", () => {
      const payment = { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } };
      expectIssue(
        { offers: [offer({ payment: { ...payment, maxTimeoutSecond: 60 } })] },
        "offers[0].payment",
        /unknown field "maxTimeoutSecond": did you mean "maxTimeoutSeconds"/,
      );
    });
    it("range errors name the allowed range and the fix", () => {
      expectIssue(
        { offers: [offer({ limits: { rps: -1 } })] },
        "offers[0].limits.rps",
        /must be a whole number 0 or more: requests per second across all gateway replicas; 0 or absent means no limit/,
      );
      expectIssue(
        {
          offers: [
            offer({
              payment: {
                network: "base-sepolia",
                payTo: PAY_TO,
                price: { perRequest: "0.001" },
                maxTimeoutSeconds: 5,
              },
            }),
          ],
        },
        "offers[0].payment.maxTimeoutSeconds",
        /must be a whole number from 10 to 86400: how long a buyer's signed payment stays valid/,
      );
      expectIssue({ cluster: { servers: 1.5 } }, "cluster.servers", /whole number from 1 to 3/);
    });
  });

  it("the generated LiteLLM master key cannot be set by hand (it would be ignored)", () => {
    expectIssue(
      { litellmMasterKey: "<set>" },
      "litellmMasterKey",
      /generated by the stack.*pulumi config rm litellmMasterKey/,
      {
        stack: "dev",
        secretKeys: new Set(["litellmMasterKey"]),
      },
    );
  });

  it("lists every problem at once, across sections, even with schema errors (README: every problem listed)", () => {
    const raw = {
      ofers: [],
      cluster: { name: "Bad_Name" },
      tunnel: { mode: "sideways" },
      facilitator: { mode: "self" },
      offers: [
        offer({
          prcie: "1",
          payment: { network: "base-sepolia", payTo: "0x1", price: { perRequest: "0.001" } },
        }),
        offer({ name: "second", payment: { network: "nope", payTo: PAY_TO, price: {} } }),
      ],
      purchases: [
        {
          name: "p",
          endpoint: "https://s.example.com",
          model: "m",
          payment: { network: "base-sepolia", maxPrice: "1" },
          budget: { maxPerRequest: "0.5" },
        },
      ],
    };
    const snapshot = structuredClone(raw);
    try {
      parseStackConfig(raw, ctx);
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      const paths = new Set(err.issues.map((i) => i.path));
      for (const path of [
        "ofers",
        "cluster.name",
        "tunnel.mode",
        "facilitator.rpcUrl",
        "facilitatorSignerKey",
        "offers[0]",
        "offers[0].payment.payTo",
        "offers[1].payment.network",
        "offers[1].payment.price",
        "purchases[0].payment.maxPrice",
        "buyerSignerKey",
      ]) {
        assert.ok(paths.has(path), `${path} missing from ${JSON.stringify(err.issues, null, 1)}`);
      }
    }
    assert.deepEqual(raw, snapshot, "the input is never modified");
  });
});

describe("stack config: gateway and monitoring (README: Operating)", () => {
  it("gateway.replicas defaults to 1 and takes any whole number from 1", () => {
    assert.deepEqual(parseStackConfig({}, ctx).gateway, { replicas: 1 });
    assert.deepEqual(parseStackConfig({ gateway: { replicas: 3 } }, ctx).gateway, { replicas: 3 });
  });

  it("refuses replicas that are not a whole number of at least 1, naming the field", () => {
    for (const bad of [0, -1, 1.5, "2"]) {
      expectIssue({ gateway: { replicas: bad } }, "gateway.replicas", /whole number 1 or more: gateway pods/);
    }
    expectIssue({ gateway: { replica: 2 } }, "gateway", /did you mean "replicas"/);
  });

  it("refuses an offer limit below gateway.replicas (each replica allows at least 1), with the fix", () => {
    const raw = (limits: Record<string, number>, replicas: number) => ({
      gateway: { replicas },
      offers: [offer({ limits })],
    });
    assert.deepEqual(parseStackConfig(raw({ rps: 3, maxInFlight: 3 }, 3), ctx).offers[0]?.spec.limits, {
      rps: 3,
      maxInFlight: 3,
    });
    assert.ok(parseStackConfig(raw({ rps: 0, maxInFlight: 0 }, 3), ctx), "0 means no limit");
    expectIssue(
      raw({ maxInFlight: 2 }, 3),
      "offers[0].limits.maxInFlight",
      /below gateway\.replicas \(3\).*at least 3/,
    );
    expectIssue(
      raw({ rps: 1 }, 2),
      "offers[0].limits.rps",
      /below gateway\.replicas \(2\).*lower gateway\.replicas/,
    );
    expectIssue(raw({ perPayerRps: 1 }, 2), "offers[0].limits.perPayerRps", /below gateway\.replicas \(2\)/);
  });

  it("limits.perPayerRps is a whole number carried into the ServiceOffer; a bad value names the field", () => {
    assert.deepEqual(
      parseStackConfig({ offers: [offer({ limits: { perPayerRps: 5 } })] }, ctx).offers[0]?.spec.limits,
      {
        perPayerRps: 5,
      },
    );
    for (const bad of [-1, 1.5, "5"]) {
      expectIssue(
        { offers: [offer({ limits: { perPayerRps: bad } })] },
        "offers[0].limits.perPayerRps",
        /must be a whole number 0 or more: paid requests per second from one paying address/,
      );
    }
    expectIssue(
      { offers: [offer({ limits: { perPayer: 5 } })] },
      "offers[0].limits",
      /did you mean "perPayerRps"/,
    );
  });

  it("routes[].price and schemes: a paid route's own price, carried into the ServiceOffer", () => {
    const spec = parseStackConfig(
      {
        offers: [
          offer({
            routes: [
              { path: "/premium", price: { perRequest: "0.05" } },
              { path: "/health", gate: "free" },
            ],
          }),
        ],
      },
      ctx,
    ).offers[0]?.spec;
    assert.deepEqual(spec?.routes, [
      { path: "/premium", gate: "paid", price: { perRequest: "0.05" } },
      { path: "/health", gate: "free" },
    ]);
    const upto = parseStackConfig(
      {
        offers: [
          offer({
            type: "inference",
            model: { name: "m" },
            schemes: ["exact", "upto"],
            payment: { network: "base-sepolia", payTo: PAY_TO, price: { perMTok: "1" } },
            routes: [{ path: "/v1/embeddings", price: { perRequest: "0.001" }, schemes: ["exact"] }],
          }),
        ],
      },
      ctx,
    ).offers[0]?.spec.routes;
    assert.deepEqual(upto, [
      { path: "/v1/embeddings", gate: "paid", price: { perRequest: "0.001" }, schemes: ["exact"] },
    ]);
  });

  it("a bad route price or schemes fails naming offers[i].routes[j].price… and the fix", () => {
    const routes = (r: Record<string, unknown>) => ({ offers: [offer({ routes: [{ path: "/a" }, r] })] });
    expectIssue(
      routes({ path: "/p", price: { perRequest: "0" } }),
      "offers[0].routes[1].price.perRequest",
      /greater than 0.*free route/,
    );
    expectIssue(
      routes({ path: "/p", price: { perRequest: 0.01 } }),
      "offers[0].routes[1].price.perRequest",
      /quoted strings/,
    );
    expectIssue(
      routes({ path: "/p", price: { perRequest: "0.0000001" } }),
      "offers[0].routes[1].price.perRequest",
      /decimal/,
    );
    expectIssue(
      routes({ path: "/p", price: { perRequest: "1", perMTok: "2" } }),
      "offers[0].routes[1].price",
      /exactly one of price.perRequest or price.perMTok/,
    );
    expectIssue(routes({ path: "/p", price: { perRequst: "1" } }), "offers[0].routes[1].price", /perRequest/);
    expectIssue(
      routes({ path: "/p", gate: "free", price: { perRequest: "1" } }),
      "offers[0].routes[1].price",
      /free route is not charged: remove price and schemes, or set gate: paid/,
    );
    expectIssue(
      routes({ path: "/p", schemes: ["upto"] }),
      "offers[0].routes[1].schemes",
      /needs type: inference/,
    );
    expectIssue(
      {
        offers: [
          offer({
            type: "inference",
            model: { name: "m" },
            schemes: ["upto"],
            payment: { network: "base-sepolia", payTo: PAY_TO, price: { perMTok: "1" } },
            routes: [{ path: "/v1/x", price: { perRequest: "0.01" } }],
          }),
        ],
      },
      "offers[0].routes[0].price",
      /every payment needs price.perMTok; remove "upto" or price this route perMTok/,
    );
  });

  it("monitoring.serviceMonitors is auto (default), true or false, also as the strings `pulumi config set` stores", () => {
    const sm = (v?: unknown) =>
      parseStackConfig(v === undefined ? {} : { monitoring: { serviceMonitors: v } }, ctx).monitoring
        .serviceMonitors;
    assert.equal(sm(), "auto");
    assert.equal(sm("auto"), "auto");
    assert.equal(sm(true), true);
    assert.equal(sm("true"), true);
    assert.equal(sm(false), false);
    assert.equal(sm("false"), false);
    expectIssue(
      { monitoring: { serviceMonitors: "yes" } },
      "monitoring.serviceMonitors",
      /"auto", true or false/,
    );
  });
});
