import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { agentRegistrationProvider } from "../../providers/agentRegistration";
import {
  type AgentRegistrationInputs,
  type AgentRegistrationState,
  chainIdOfNetwork,
  checkInputs,
  diffRegistration,
  metadataBytes,
  metadataString,
  metadataWrites,
  nameFromUri,
  notOwnerMessage,
  parseDataUriJson,
  plainOutputs,
  type RegisteredEvent,
  registrationCandidates,
  tombstoneDocument,
  tombstoneUri,
  UNKNOWN,
} from "../../providers/agentRegistrationLogic";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const REGISTRY = "0x8004A818BFB912233c491871b3d84c89A494BD9e";

const inputs: AgentRegistrationInputs = {
  network: "eip155:84532",
  registry: REGISTRY,
  rpcUrl: "https://sepolia.base.org",
  agentURI: "https://api.example.com/.well-known/agent-registration.json",
  signerKey: KEY,
};

const state: AgentRegistrationState & { __provider: string } = {
  ...inputs,
  agentId: "7",
  owner: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  txHash: `0x${"ab".repeat(32)}`,
  agentRegistry: `eip155:84532:${REGISTRY}`,
  __provider: "exports.handler = __f0; // old code",
};

describe("AgentRegistration: checkInputs", () => {
  it("accepts a complete registration", () => {
    assert.deepEqual(
      checkInputs({ ...inputs, metadata: { x402: "true" }, adoptAgentId: "0", agentWallet: REGISTRY }),
      [],
    );
  });

  it("names each bad field with the fix, and never echoes a key", () => {
    const badKey = `${KEY}ff`;
    const failures = checkInputs({
      ...inputs,
      network: "base-sepolia",
      registry: "0x1234",
      signerKey: badKey,
      adoptAgentId: "-1",
      metadata: { agentWallet: "0x" },
    });
    assert.deepEqual(failures.map((f) => f.property).sort(), [
      "adoptAgentId",
      "metadata",
      "network",
      "registry",
      "signerKey",
    ]);
    assert.match(failures.find((f) => f.property === "network")!.reason, /eip155:<chainId>/);
    assert.match(failures.find((f) => f.property === "metadata")!.reason, /reserved/);
    for (const f of failures) assert.ok(!f.reason.includes(badKey.slice(2)), `${f.property} echoes the key`);
  });

  it("requires the signer key and the chain coordinates", () => {
    const failures = checkInputs({ agentURI: "https://x" });
    assert.deepEqual(failures.map((f) => f.property).sort(), ["network", "registry", "rpcUrl", "signerKey"]);
  });

  it("skips values that are unknown during preview", () => {
    assert.deepEqual(
      checkInputs({
        ...inputs,
        registry: UNKNOWN,
        agentURI: UNKNOWN,
        signerKey: UNKNOWN,
        metadata: { a: UNKNOWN },
      }),
      [],
    );
  });
});

describe("AgentRegistration: diff", () => {
  it("reports no change for the same inputs, whatever the provider code (__provider)", () => {
    const news = { ...inputs, __provider: "exports.handler = __f0; // new code" };
    assert.deepEqual(diffRegistration(state, news), { changes: false, replaces: [] });
  });

  it("ignores address case and searchFromBlock", () => {
    assert.deepEqual(
      diffRegistration(state, { ...inputs, registry: REGISTRY.toLowerCase(), searchFromBlock: "9" }),
      {
        changes: false,
        replaces: [],
      },
    );
  });

  it("updates in place for a new agentURI, RPC, metadata or wallet", () => {
    for (const change of [
      { agentURI: "https://other.example/registration.json" },
      { rpcUrl: "https://base-sepolia.example" },
      { metadata: { x402: "true" } },
      { agentWallet: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" },
    ]) {
      assert.deepEqual(diffRegistration(state, { ...inputs, ...change }), { changes: true, replaces: [] });
    }
  });

  it("compares metadata as a map, not by key order", () => {
    const olds = { ...state, metadata: { a: "1", b: "2" } };
    assert.equal(diffRegistration(olds, { ...inputs, metadata: { b: "2", a: "1" } }).changes, false);
    assert.equal(diffRegistration(olds, { ...inputs, metadata: { a: "1" } }).changes, true);
  });

  it("replaces for another chain, registry or adopted agent", () => {
    assert.deepEqual(diffRegistration(state, { ...inputs, network: "eip155:8453" }).replaces, ["network"]);
    assert.deepEqual(diffRegistration(state, { ...inputs, registry: `0x${"1".repeat(40)}` }).replaces, [
      "registry",
    ]);
    assert.deepEqual(diffRegistration(state, { ...inputs, adoptAgentId: "8" }).replaces, ["adoptAgentId"]);
    assert.deepEqual(diffRegistration(state, { ...inputs, adoptAgentId: "7" }), {
      changes: false,
      replaces: [],
    });
  });

  it("treats unknowns as changes, and unknown coordinates as replacements", () => {
    assert.deepEqual(diffRegistration(state, { ...inputs, agentURI: UNKNOWN }), {
      changes: true,
      replaces: [],
    });
    assert.deepEqual(diffRegistration(state, { ...inputs, metadata: { a: UNKNOWN } }).changes, true);
    assert.deepEqual(diffRegistration(state, { ...inputs, registry: UNKNOWN }).replaces, ["registry"]);
    assert.deepEqual(diffRegistration(state, { ...inputs, network: UNKNOWN }).replaces, ["network"]);
  });
});

describe("AgentRegistration: tombstone", () => {
  const agentRegistry = `eip155:84532:${REGISTRY}`;

  it("is an inactive registration-v1 document in a base64 data: URI", () => {
    const uri = tombstoneUri({ agentId: "7", agentRegistry, name: "Weather agent" });
    assert.match(uri, /^data:application\/json;base64,/);
    const doc = parseDataUriJson(uri);
    assert.deepEqual(doc, {
      ...tombstoneDocument({ agentId: "7", agentRegistry, name: "Weather agent" }),
      registrations: [{ agentId: 7, agentRegistry }],
    });
    assert.match(String(doc?.image), /^data:image\/svg\+xml;base64,/, "image SHOULD be present");
    assert.equal(doc?.type, "https://eips.ethereum.org/EIPS/eip-8004#registration-v1");
    assert.equal(doc?.active, false);
    assert.equal(doc?.x402Support, false);
    assert.deepEqual(doc?.services, []);
    assert.deepEqual(doc?.registrations, [{ agentId: 7, agentRegistry }]);
  });

  it("writes an agentId above 2^53 digit for digit", () => {
    const agentId = "9007199254740993"; // 2^53 + 1: Number() would make it ...992
    const uri = tombstoneUri({ agentId, agentRegistry });
    const json = Buffer.from(uri.slice(uri.indexOf(",") + 1), "base64").toString("utf8");
    assert.match(json, /"registrations":\[\{"agentId":9007199254740993,/);
    const uint256Max = (2n ** 256n - 1n).toString();
    assert.ok(tombstoneUri({ agentId: uint256Max, agentRegistry }).length > 0);
    assert.ok(
      Buffer.from(tombstoneUri({ agentId: uint256Max, agentRegistry }).split(",")[1]!, "base64")
        .toString("utf8")
        .includes(`"agentId":${uint256Max}`),
    );
  });

  it("refuses a chain id viem cannot hold exactly, instead of registering on a rounded one", () => {
    const failures = checkInputs({ ...inputs, network: "eip155:9007199254740993" });
    assert.match(failures.find((f) => f.property === "network")?.reason ?? "", /above 2\^53-1/);
    assert.throws(() => chainIdOfNetwork("eip155:9007199254740993"), /above 2\^53-1/);
    assert.equal(chainIdOfNetwork("eip155:84532"), 84532);
  });

  it("keeps the name of an on-chain document, else names the agent by id", () => {
    const current = `data:application/json,${encodeURIComponent(JSON.stringify({ name: "Weather agent" }))}`;
    assert.equal(nameFromUri(current), "Weather agent");
    assert.equal(nameFromUri("https://api.example.com/registration.json"), undefined);
    assert.equal(tombstoneDocument({ agentId: "7", agentRegistry }).name, "Agent 7");
  });

  it("parses only JSON objects from data: URIs", () => {
    assert.equal(parseDataUriJson("data:application/json;base64,bm90IGpzb24="), undefined);
    assert.equal(parseDataUriJson("data:text/plain,hello"), undefined);
    assert.equal(parseDataUriJson(`data:application/json,${encodeURIComponent("[1]")}`), undefined);
  });
});

describe("AgentRegistration: Registered events and metadata", () => {
  const event = (agentId: bigint, agentURI: string): RegisteredEvent => ({
    agentId,
    agentURI,
    owner: state.owner,
    txHash: `0x${agentId.toString(16).padStart(64, "0")}`,
    blockNumber: agentId * 10n,
  });

  it("picks the signer's registrations with the same URI, newest first", () => {
    const uri = inputs.agentURI;
    const candidates = registrationCandidates(
      [event(1n, uri), event(2n, "https://other"), event(5n, uri)],
      uri,
    );
    assert.deepEqual(
      candidates.map((e) => e.agentId),
      [5n, 1n],
    );
    assert.deepEqual(registrationCandidates([event(2n, "https://other")], uri), []);
  });

  it("writes only keys whose bytes differ, and clears keys no longer declared", () => {
    const onChain = {
      x402: metadataBytes("true"),
      tier: metadataBytes("gold"),
      old: metadataBytes("x"),
      gone: "0x",
    };
    const writes = metadataWrites({ x402: "true", tier: "platinum", fresh: "1" }, onChain, [
      "x402",
      "old",
      "gone",
    ]);
    assert.deepEqual(writes, [
      { key: "fresh", value: metadataBytes("1") },
      { key: "tier", value: metadataBytes("platinum") },
      { key: "old", value: "0x" },
    ]);
    assert.deepEqual(metadataWrites({ x402: "true" }, { x402: metadataBytes("true").toUpperCase() }, []), []);
  });

  it("stores metadata as UTF-8 bytes", () => {
    assert.equal(metadataBytes("héllo"), "0x68c3a96c6c6f");
    assert.equal(metadataString("0x68c3a96c6c6f"), "héllo");
    assert.equal(metadataString("0x"), "");
  });
});

describe("AgentRegistration: outputs and errors", () => {
  it("drops undefined and stringifies bigints, at any depth", () => {
    assert.deepEqual(plainOutputs({ a: 1n, b: undefined, c: { d: undefined, e: [2n, undefined] }, f: "x" }), {
      a: "1",
      c: { e: ["2"] },
      f: "x",
    });
  });

  it("says who owns the agent and what to do", () => {
    const message = notOwnerMessage({
      agentId: "5",
      owner: "0xabc",
      signer: "0xdef",
      network: "eip155:84532",
      adopting: true,
    });
    assert.equal(
      message,
      'agentId 5 on eip155:84532 is owned by 0xabc, not the signer 0xdef: use the owner\'s key as the identity signer, or drop identity.agentIds["eip155:84532"] to mint a new agent',
    );
  });
});

describe("AgentRegistration: the provider closure", () => {
  it("rejects a key off the curve without echoing it", async () => {
    const offCurve = `0x${"f".repeat(64)}`;
    await assert.rejects(agentRegistrationProvider.create({ ...inputs, signerKey: offCurve }), (e: Error) => {
      assert.match(e.message, /signerKey is not a valid secp256k1 private key/);
      assert.ok(!/f{16}|[0-9]{40}/.test(e.message), "the message carries the key");
      return true;
    });
  });

  it("serializes without capturing clients, schemas or packages", async function () {
    this.timeout(60_000);
    const { text } = await pulumi.runtime.serializeFunction(() => agentRegistrationProvider);
    assert.ok(!/zod/.test(text), "a zod schema was captured");
    assert.ok(!/^var .*= require\("viem/m.test(text), "viem was captured at module level");
    assert.ok(/require\("viem"\)/.test(text), "viem is required inside the methods");
    assert.ok(!/0x[0-9a-fA-F]{64}"/.test(text), "a 32-byte hex value (a key?) was captured");
  });
});
