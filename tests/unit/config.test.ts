import * as assert from "node:assert/strict";
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
    ];
    for (const [what, raw, path, pattern, context] of cases) {
      it(what, () => expectIssue(raw, path, pattern, context));
    }
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
    assert.deepEqual(cfg.identity.chains, [
      {
        network: "eip155:84532",
        rpcUrl: "http://127.0.0.1:8545",
        registry: "0x8004A818BFB912233c491871b3d84c89A494BD9e",
      },
    ]);
    assert.deepEqual(cfg.secrets.sort(), ["identitySignerKey", "tunnelToken"]);
  });
});
