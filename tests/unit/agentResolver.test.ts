import * as assert from "node:assert/strict";
import { formatAgentRef, parseAgentRef } from "../../api/agentRef";
import { registrationReadSchema } from "../../api/registration";
import { AgentResolverCache, selectService } from "../../controller/shared/agentResolver";

const REGISTRY = "0x8004A818BFB912233c491871b3d84c89A494BD9e";
const agent = {
  network: "eip155:84532",
  registry: REGISTRY,
  agentId: "9007199254740993",
  rpcUrl: "http://rpc",
};
const doc = (overrides: Record<string, unknown> = {}) =>
  registrationReadSchema.parse({
    type: "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
    name: "Alice",
    services: [
      { name: "web", endpoint: "https://alice.example/" },
      {
        name: "qwen-per-request",
        endpoint: "https://alice.example/services/qwen/",
        type: "inference",
        model: "qwen",
      },
      {
        name: "qwen-per-token",
        endpoint: "https://alice.example/services/qwen-tok",
        type: "inference",
        model: "qwen",
      },
      { name: "llama", endpoint: "https://alice.example/services/llama", type: "inference", model: "llama3" },
      { name: "docs", endpoint: "https://alice.example/services/docs", type: "http" },
    ],
    active: true,
    registrations: [{ agentId: 9007199254740993n, agentRegistry: `eip155:84532:${REGISTRY.toLowerCase()}` }],
    ...overrides,
  });

describe("ERC-8004 agent references and seller resolution", () => {
  it("parses eip155:<chainId>:<registry>#<agentId> exactly and refuses anything else", () => {
    const ref = parseAgentRef(`eip155:84532:${REGISTRY.toLowerCase()}#0042`);
    assert.deepEqual(ref, { network: "eip155:84532", registry: REGISTRY, agentId: "42" });
    assert.equal(formatAgentRef(ref), `eip155:84532:${REGISTRY}#42`);
    const max = ((1n << 256n) - 1n).toString();
    assert.equal(parseAgentRef(`eip155:1:${REGISTRY}#${max}`).agentId, max);
    assert.throws(() => parseAgentRef(`eip155:1:${REGISTRY}#${(1n << 256n).toString()}`), /uint256/);
    assert.throws(() => parseAgentRef(`eip155:1:${REGISTRY}`), /eip155:<chainId>/);
    assert.throws(() => parseAgentRef(`eip155:1:0x8004a818BFB912233c491871b3d84c89A494BD9e#1`), /checksum/);
  });

  it("finds the offer by model, by name, or by agent.service, and strips a trailing slash", () => {
    assert.deepEqual(selectService(doc(), agent, "llama3", "u"), {
      ok: true,
      endpoint: "https://alice.example/services/llama",
      agentURI: "u",
    });
    assert.equal(
      (selectService(doc(), agent, "docs", "u") as { endpoint: string }).endpoint,
      "https://alice.example/services/docs",
    );
    const ambiguous = selectService(doc(), agent, "qwen", "u");
    assert.equal(ambiguous.ok, false);
    assert.match(
      (ambiguous as { message: string }).message,
      /2 services for model "qwen".*set agent.service/,
    );
    assert.equal(
      (selectService(doc(), { ...agent, service: "qwen-per-request" }, "qwen", "u") as { endpoint: string })
        .endpoint,
      "https://alice.example/services/qwen",
    );
    const missing = selectService(doc(), agent, "gpt", "u");
    assert.deepEqual([missing.ok, (missing as { reason: string }).reason], [false, "ServiceNotFound"]);
    assert.match((missing as { message: string }).message, /llama \(model llama3\)/);
  });

  it("refuses a document that does not name this agent on this registry (exact ids, no rounding)", () => {
    // 9007199254740992 is what Number() makes of ...993: it must not match.
    const near = doc({
      registrations: [{ agentId: 9007199254740992n, agentRegistry: `eip155:84532:${REGISTRY}` }],
    });
    const verdict = selectService(near, agent, "llama3", "https://alice.example/reg.json");
    assert.equal(verdict.ok, false);
    assert.equal((verdict as { reason: string }).reason, "AgentMismatch");
    assert.match(
      (verdict as { message: string }).message,
      /does not name agent eip155:84532:0x8004.*#9007199254740993/,
    );
    const otherChain = doc({
      registrations: [{ agentId: "9007199254740993", agentRegistry: `eip155:8453:${REGISTRY}` }],
    });
    assert.equal(
      (selectService(otherChain, agent, "llama3", "u") as { reason: string }).reason,
      "AgentMismatch",
    );
    const inactive = doc({ active: false });
    assert.equal(
      (selectService(inactive, agent, "llama3", "u") as { reason: string }).reason,
      "AgentInactive",
    );
  });

  it("reads legacy `endpoints` documents", () => {
    const legacy = registrationReadSchema.parse({
      endpoints: [{ name: "llama", endpoint: "https://a/services/llama", model: "llama3" }],
      registrations: [{ agentId: 9007199254740993n, agentRegistry: `eip155:84532:${REGISTRY}` }],
    });
    assert.equal(selectService(legacy, agent, "llama3", "u").ok, true);
  });

  it("caches a resolution for its TTL, a failure only briefly", async () => {
    let calls = 0;
    let answer: { ok: boolean } = { ok: false };
    const cache = new AgentResolverCache(
      { timeoutMs: 1, userAgent: "t", ttlMs: 60_000, failureTtlMs: 5_000 },
      async () => {
        calls++;
        return answer.ok
          ? { ok: true, endpoint: "https://a" }
          : { ok: false, reason: "AgentUnresolved", message: "down" };
      },
    );
    await cache.get(agent, "m", 0);
    await cache.get(agent, "m", 4_000);
    assert.equal(calls, 1);
    answer = { ok: true };
    assert.equal((await cache.get(agent, "m", 5_000)).ok, true);
    await cache.get(agent, "m", 60_000);
    assert.equal(calls, 2);
    await cache.get(agent, "m", 65_001);
    assert.equal(calls, 3);
  });
});
