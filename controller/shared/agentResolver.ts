/**
 * Finding a seller from its ERC-8004 identity: the registry's `tokenURI(agentId)` → the
 * registration document (http(s) or data: URI) → the document must name this very agent in
 * `registrations[]` → the offer's endpoint in `services[]`. The pure checks are separate from
 * the chain and HTTP reads; every failure is a typed reason with a message an operator can act on.
 */
import { createPublicClient, getAddress, http, isAddress, parseAbi } from "viem";
import { agentRegistryId, type Caip2 } from "../../api/chains";
import type { AgentReason } from "../../api/conditions";
import { parseExact, type RegistrationRead, registrationReadSchema } from "../../api/registration";
import type { PurchaseAgent, PurchaseRequestSpec } from "../../api/resources";
import { errorMessage } from "./log";

export type AgentFailureReason = AgentReason;

export type AgentResolution =
  | { readonly ok: true; readonly endpoint: string; readonly agentURI?: string }
  | { readonly ok: false; readonly reason: AgentFailureReason; readonly message: string };

const IDENTITY_ABI = parseAbi(["function tokenURI(uint256 agentId) view returns (string)"]);
/** A registration document is small; anything bigger is not one. */
const MAX_DOCUMENT_BYTES = 256 * 1024;

export function describeAgent(agent: Pick<PurchaseAgent, "network" | "registry" | "agentId">): string {
  return `${agent.network}:${agent.registry}#${agent.agentId}`;
}

function sameRegistry(a: string, b: string): boolean {
  const split = (s: string) => {
    const i = s.lastIndexOf(":");
    const address = s.slice(i + 1);
    return {
      network: s.slice(0, i),
      address: isAddress(address, { strict: false }) ? getAddress(address) : address,
    };
  };
  const [x, y] = [split(a), split(b)];
  return x.network === y.network && x.address === y.address;
}

/**
 * Pure: does `doc` name `agent`, and which of its services sells `model` (or is named
 * `agent.service`)? `agentURI` only goes into messages.
 */
export function selectService(
  doc: RegistrationRead,
  agent: PurchaseAgent,
  model: string,
  agentURI: string,
): AgentResolution {
  const who = describeAgent(agent);
  const registry = agentRegistryId(agent.network as Caip2, agent.registry);
  const id = BigInt(agent.agentId);
  if (!doc.registrations.some((r) => r.agentId === id && sameRegistry(r.agentRegistry, registry))) {
    const named = doc.registrations.map((r) => `${r.agentRegistry}#${r.agentId}`).join(", ") || "none";
    return {
      ok: false,
      reason: "AgentMismatch",
      message: `the registration document at ${agentURI} does not name agent ${who} in registrations[] (it names: ${named}); it may belong to another agent, so nothing is bought from it`,
    };
  }
  if (doc.active === false) {
    return {
      ok: false,
      reason: "AgentInactive",
      message: `agent ${who} is deactivated (active: false in ${agentURI}): it offers nothing right now`,
    };
  }
  const services = doc.services.filter((s) => /^https?:\/\//.test(s.endpoint));
  const matches = agent.service
    ? services.filter((s) => s.name === agent.service)
    : (() => {
        const byModel = services.filter((s) => s.model === model);
        return byModel.length > 0 ? byModel : services.filter((s) => s.name === model);
      })();
  const names = services.map((s) => `${s.name}${typeof s.model === "string" ? ` (model ${s.model})` : ""}`);
  if (matches.length === 0) {
    return {
      ok: false,
      reason: "ServiceNotFound",
      message: `agent ${who} lists no service ${agent.service ? `named "${agent.service}"` : `for model "${model}"`} in ${agentURI}; it lists: ${names.join(", ") || "nothing"}`,
    };
  }
  const [match] = matches;
  if (!match || matches.length > 1) {
    return {
      ok: false,
      reason: "ServiceNotFound",
      message: `agent ${who} lists ${matches.length} services for model "${model}" (${matches.map((s) => s.name).join(", ")}); set agent.service to the one to buy`,
    };
  }
  return { ok: true, endpoint: match.endpoint.replace(/\/+$/, ""), agentURI };
}

/** Reads at most `max` bytes of a response body; longer bodies are refused, not truncated. */
async function readCapped(res: Response, max: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`the document is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export interface ResolveOptions {
  timeoutMs: number;
  userAgent: string;
}

/** Reads the chain and the registration document; never throws. */
export async function resolveAgent(
  agent: PurchaseAgent,
  model: string,
  opts: ResolveOptions,
): Promise<AgentResolution> {
  const who = describeAgent(agent);
  const fail = (message: string): AgentResolution => ({ ok: false, reason: "AgentUnresolved", message });
  const client = createPublicClient({
    transport: http(agent.rpcUrl, { timeout: opts.timeoutMs, retryCount: 0 }),
  });
  let agentURI: string;
  try {
    const chainId = await client.getChainId();
    if (`eip155:${chainId}` !== agent.network)
      return fail(
        `agent.rpcUrl serves chain eip155:${chainId}, not ${agent.network} where agent ${who} is registered`,
      );
    agentURI = await client.readContract({
      address: agent.registry as `0x${string}`,
      abi: IDENTITY_ABI,
      functionName: "tokenURI",
      args: [BigInt(agent.agentId)],
    });
  } catch (err) {
    const short =
      err instanceof Error
        ? ((err as { shortMessage?: string }).shortMessage ?? err.message)
        : errorMessage(err);
    return fail(
      `reading tokenURI of agent ${who} failed (no such agent, or the registry is unreachable): ${short}`,
    );
  }
  if (!agentURI) return fail(`agent ${who} has no agentURI set`);

  let scheme: string;
  try {
    scheme = new URL(agentURI).protocol;
  } catch {
    return fail(`agent ${who}'s agentURI "${agentURI.slice(0, 200)}" is not a URL`);
  }
  if (!["http:", "https:", "data:"].includes(scheme))
    return fail(
      `agent ${who}'s agentURI uses ${scheme}//, which the buyer cannot read (http, https and data: URIs only)`,
    );
  const shown = scheme === "data:" ? "its data: agentURI" : agentURI;
  let text: string;
  try {
    const res = await fetch(agentURI, {
      headers: { "user-agent": opts.userAgent, accept: "application/json" },
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      return fail(`fetching ${shown} answered ${res.status}, not the registration document`);
    }
    text = await readCapped(res, MAX_DOCUMENT_BYTES);
  } catch (err) {
    return fail(`fetching ${shown} failed: ${errorMessage(err)}`);
  }
  let doc: RegistrationRead;
  try {
    const parsed = registrationReadSchema.safeParse(parseExact(text));
    if (!parsed.success)
      return fail(`${shown} is not an ERC-8004 registration document: ${parsed.error.issues[0]?.message}`);
    doc = parsed.data;
  } catch {
    return fail(`${shown} is not JSON`);
  }
  return selectService(doc, agent, model, shown);
}

/** Where a purchase's seller is: its `endpoint`, or where its `agent` resolves to. */
export function sellerEndpoint(
  spec: PurchaseRequestSpec,
  resolve: (agent: PurchaseAgent, model: string) => Promise<AgentResolution>,
): Promise<AgentResolution> {
  if (spec.endpoint) return Promise.resolve({ ok: true, endpoint: spec.endpoint });
  if (!spec.agent) throw new Error("a PurchaseRequest spec names neither endpoint nor agent");
  return resolve(spec.agent, spec.model);
}

/**
 * Resolutions remembered for a while, so the buyer does not read the chain on every call. A
 * failure is kept only briefly: the seller may be coming up.
 */
export class AgentResolverCache {
  private readonly entries = new Map<string, { at: number; value: AgentResolution }>();

  constructor(
    private readonly opts: ResolveOptions & { ttlMs: number; failureTtlMs: number },
    private readonly resolve: typeof resolveAgent = resolveAgent,
  ) {}

  async get(agent: PurchaseAgent, model: string, now = Date.now()): Promise<AgentResolution> {
    const key = JSON.stringify([
      agent.network,
      agent.registry,
      agent.agentId,
      agent.rpcUrl,
      agent.service,
      model,
    ]);
    const hit = this.entries.get(key);
    if (hit && now - hit.at < (hit.value.ok ? this.opts.ttlMs : this.opts.failureTtlMs)) return hit.value;
    const value = await this.resolve(agent, model, this.opts);
    this.entries.set(key, { at: now, value });
    return value;
  }
}
