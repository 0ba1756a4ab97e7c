import * as assert from "node:assert/strict";
import { isTestnet, legacyNetworkName, networkLabel, toCaip2, UnknownChainError } from "../../api/chains";
import { CRD_DEFINITIONS, crdManifest, jsonSchemaOf } from "../../api/crds";
import { compareDecimal, fromAtomic, PriceError, toAtomic } from "../../api/money";
import { describeCharge } from "../../api/pricing";
import { serviceOfferSpecSchema } from "../../api/resources";
import { defined, first } from "../harness/assertions";

describe("chains", () => {
  it("converts legacy names and CAIP-2 to CAIP-2, once", () => {
    assert.equal(toCaip2("base-sepolia"), "eip155:84532");
    assert.equal(toCaip2("BASE"), "eip155:8453");
    assert.equal(toCaip2("eip155:84532"), "eip155:84532");
    assert.equal(toCaip2("eip155:999"), "eip155:999", "any EVM chain id is allowed");
    assert.equal(legacyNetworkName("eip155:84532"), "base-sepolia");
    assert.equal(legacyNetworkName("eip155:999"), "eip155:999");
  });
  it("rejects unknown names with the list of known ones", () => {
    assert.throws(
      () => toCaip2("base-goerli"),
      (e: unknown) => e instanceof UnknownChainError && /eip155:84532 \(base-sepolia\)/.test(e.message),
    );
    assert.throws(() => toCaip2("eip155:0"), UnknownChainError);
    assert.throws(() => toCaip2("solana:mainnet"), UnknownChainError);
  });
});

describe("what a person reads about a network and a price", () => {
  it("labels public testnets, and only them", () => {
    assert.equal(networkLabel("eip155:8453"), "Base");
    assert.equal(networkLabel("eip155:84532"), "Base Sepolia (testnet)");
    assert.equal(networkLabel("eip155:31337"), "Local (anvil)");
    assert.equal(networkLabel("eip155:424242"), "eip155:424242");
    assert.deepEqual(
      ["eip155:8453", "eip155:84532", "eip155:11155111", "eip155:31337", "eip155:424242"].map(isTestnet),
      [false, true, true, false, false],
    );
  });
  it("states one call's charge in the token's symbol and decimals, per-token rates included", () => {
    const asset = { symbol: "USDC", decimals: 6 } as const;
    const base = { network: "eip155:84532", asset: asset as never };
    assert.equal(
      describeCharge({ ...base, price: { perRequest: "0.001" } }),
      "0.001 USDC on Base Sepolia (testnet)",
    );
    assert.equal(
      describeCharge({ ...base, price: { perMTok: "0.25" } }),
      "0.00025 USDC on Base Sepolia (testnet)",
    );
  });
});

describe("money", () => {
  it("converts decimal strings to atomic units exactly", () => {
    assert.equal(toAtomic("0.001", 6), 1000n);
    assert.equal(toAtomic("1", 6), 1_000_000n);
    assert.equal(toAtomic("0.1", 18), 100_000_000_000_000_000n);
    assert.equal(toAtomic("123456789.123456", 6), 123_456_789_123_456n);
    assert.equal(toAtomic("0.100000", 6), 100_000n, "trailing zeros beyond precision are fine");
    // 0.1 + 0.2 style float errors cannot happen:
    assert.equal(toAtomic("0.3", 6) - toAtomic("0.1", 6), toAtomic("0.2", 6));
  });
  it("refuses what it cannot represent exactly", () => {
    assert.throws(() => toAtomic("0.0000001", 6), PriceError);
    assert.throws(() => toAtomic("1e-3", 6), PriceError);
    assert.throws(() => toAtomic("-1", 6), PriceError);
    assert.throws(() => toAtomic(" 1", 6), PriceError);
  });
  it("round-trips and compares", () => {
    for (const v of ["0.001", "1", "10.5", "0.000001"]) assert.equal(fromAtomic(toAtomic(v, 6), 6), v);
    assert.equal(compareDecimal("0.001", "0.0010"), 0);
    assert.equal(compareDecimal("0.002", "0.001"), 1);
    assert.equal(compareDecimal("1", "1.5"), -1);
  });
});

describe("CRDs generated from the zod schemas", () => {
  it("produce structural schemas with status subresource, printer columns and short names", () => {
    for (const def of CRD_DEFINITIONS) {
      const crd = crdManifest(def);
      const version = first(crd.spec.versions);
      assert.deepEqual(version.subresources, { status: {} });
      assert.ok(version.additionalPrinterColumns.length >= 3);
      assert.ok(crd.spec.names.shortNames.length > 0);
      const text = JSON.stringify(version.schema);
      for (const banned of ["$schema", "anyOf", "oneOf", "allOf", '"additionalProperties":false', "const"]) {
        assert.ok(!text.includes(banned), `${def.kind} schema contains ${banned}`);
      }
    }
  });
  it("carry the zod constraints (patterns, enums, required)", () => {
    type Node = {
      properties: Record<string, Node>;
      required: string[];
      enum?: unknown[];
      pattern?: string;
      default?: unknown;
    };
    const schema = jsonSchemaOf(serviceOfferSpecSchema) as Node;
    const property = (node: Node, ...path: string[]): Node =>
      path.reduce((n, key) => defined(n.properties[key], `schema property ${path.join(".")}`), node);
    assert.deepEqual(property(schema, "type").enum, ["inference", "http"]);
    assert.equal(property(schema, "payment", "network").pattern, "^eip155:[1-9][0-9]*$");
    assert.ok(schema.required.includes("payment"));
    assert.equal(property(schema, "upstream", "healthPath").default, "/health");
  });
});
