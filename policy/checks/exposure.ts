/** What reaches the internet: only the gateway, through the tunnel; no external Services. */

import { asArray, asString, at, isUnknown, type JsonObject } from "./values";
import { containersOf } from "./workloads";

const CLOUDFLARED_IMAGE = /(^|\/)cloudflared([:@]|$)/;

/** cloudflared's arguments, or undefined when this container is not cloudflared or they are unknown. */
function cloudflaredArgs(container: JsonObject): string[] | undefined {
  if (isUnknown(container.args)) return undefined;
  const args = asArray(container.args).map((a) => asString(a) ?? "");
  const image = asString(container.image) ?? "";
  return CLOUDFLARED_IMAGE.test(image) || args[0] === "tunnel" ? args : undefined;
}

/** The value of `--url` (as `--url x` or `--url=x`). */
function urlArg(args: readonly string[]): string | undefined {
  const i = args.indexOf("--url");
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith("--url="))?.slice("--url=".length);
}

export interface TunnelContainer {
  label: string;
  args: string[];
}

/** The cloudflared containers a workload runs. */
export function tunnelContainers(type: string, props: JsonObject): TunnelContainer[] {
  return containersOf(type, props).flatMap(({ label, container }) => {
    const args = cloudflaredArgs(container);
    return args ? [{ label, args }] : [];
  });
}

/** A quick tunnel: `--url` without `run` (a random trycloudflare.com hostname per start). */
export function isQuickTunnel(args: readonly string[]): boolean {
  return urlArg(args) !== undefined && !args.includes("run");
}

export function checkTunnelOrigin(type: string, props: JsonObject, gatewayService: string): string[] {
  const problems: string[] = [];
  for (const { label, args } of tunnelContainers(type, props)) {
    const url = urlArg(args);
    if (url === undefined || url === "") {
      problems.push(
        `${label}: cloudflared has no --url; it must name the ${gatewayService} Service as its only origin`,
      );
      continue;
    }
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      problems.push(`${label}: cloudflared --url "${url}" is not a URL`);
      continue;
    }
    if (host !== gatewayService && !host.startsWith(`${gatewayService}.`)) {
      problems.push(
        `${label}: the tunnel exposes "${url}"; only the ${gatewayService} Service may be exposed (every other service sits behind the gateway's payment check)`,
      );
    }
  }
  return problems;
}

export function checkServiceType(props: JsonObject): string[] {
  const type = asString(at(props, "spec", "type"));
  if (type !== "LoadBalancer" && type !== "NodePort") return [];
  const name = asString(at(props, "metadata", "name")) ?? "?";
  return [
    `Service "${name}" is of type ${type}, which exposes it outside the cluster; use ClusterIP: the tunnel to the gateway is the only way in`,
  ];
}
