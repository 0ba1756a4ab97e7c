/** ERC-8004 registrations publish an agentURI on chain: it must outlive a restart. */
import { isQuickTunnel, tunnelContainers } from "./exposure";
import { asArray, asObject, asString, isUnknown, type JsonObject } from "./values";
import { containersOf } from "./workloads";

const QUICK_TUNNEL_DOMAIN = "trycloudflare.com";

function isQuickTunnelHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === QUICK_TUNNEL_DOMAIN || h.endsWith(`.${QUICK_TUNNEL_DOMAIN}`);
}

export function checkAgentUri(props: JsonObject): string[] {
  if (isUnknown(props.agentURI)) return [];
  const uri = asString(props.agentURI);
  if (uri === undefined) return ["AgentRegistration has no agentURI"];
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return [`AgentRegistration agentURI "${uri}" is not a URL`];
  }
  if (isQuickTunnelHost(url.hostname)) {
    return [
      `AgentRegistration agentURI "${uri}" is on a quick tunnel (${QUICK_TUNNEL_DOMAIN}), whose hostname changes on every restart; use a named tunnel or publicBaseUrl`,
    ];
  }
  if (url.protocol !== "https:") return [`AgentRegistration agentURI "${uri}" must be https`];
  return [];
}

export interface StackResource {
  type: string;
  props: JsonObject;
}

/**
 * A registration while the only public URL is a quick tunnel: cloudflared runs in quick mode
 * and no workload is told a stable PUBLIC_BASE_URL.
 */
export function checkRegistrationTunnel(
  resources: readonly StackResource[],
  registrationType: string,
): string[] {
  const registrations = resources.filter((r) => r.type === registrationType);
  if (registrations.length === 0) return [];
  const quick = resources
    .flatMap((r) => tunnelContainers(r.type, r.props))
    .filter((t) => isQuickTunnel(t.args));
  const [first] = quick;
  if (!first) return [];
  const stableBase = resources.some((r) =>
    containersOf(r.type, r.props).some(({ container }) =>
      asArray(container.env).some((e) => {
        const env = asObject(e);
        const value = asString(env?.value);
        return env?.name === "PUBLIC_BASE_URL" && value !== undefined && !value.includes(QUICK_TUNNEL_DOMAIN);
      }),
    ),
  );
  if (stableBase) return [];
  return [
    `${registrations.length} ERC-8004 registration(s) while ${first.label} runs a quick tunnel and no stable PUBLIC_BASE_URL is set: the on-chain agentURI would go stale on the next restart; use tunnel.mode named or set publicBaseUrl`,
  ];
}
