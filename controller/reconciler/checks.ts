/** The controller's outbound checks: upstream health and the gateway's held routes. */
import { CONTROLLER_USER_AGENT, fetchWithTimeout } from "../shared/outbound";
import { INTERNAL_ROUTES_PATH, isRoutesReport } from "../shared/routesReport";
import type { GatewayCheck, UpstreamCheck } from "./serviceOffer";

/** GET the health URL; only 2xx is healthy (a 404 health page is not a healthy upstream). */
export async function probeUpstream(url: URL, timeoutMs: number): Promise<UpstreamCheck> {
  let res: Response;
  try {
    res = await fetchWithTimeout(
      url.toString(),
      { method: "GET", headers: { "user-agent": CONTROLLER_USER_AGENT, accept: "*/*" } },
      timeoutMs,
    );
  } catch (err) {
    return {
      ok: false,
      reason: "Unreachable",
      message: `GET ${url} failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  await res.body?.cancel().catch(() => undefined);
  if (res.status >= 200 && res.status < 300) return { ok: true, url: url.toString(), status: res.status };
  return {
    ok: false,
    reason: "Unhealthy",
    message: `GET ${url} answered ${res.status}; the health path must answer 2xx`,
  };
}

/**
 * Reads the gateway's held routes from its internal port. Answers are shared for `cacheMs` so a
 * burst of reconciles makes one request.
 */
export class GatewayRoutesClient {
  private cached?: { at: number; value: Promise<GatewayCheck> };

  constructor(
    private readonly internalUrl: string,
    private readonly timeoutMs: number,
    private readonly cacheMs = 250,
  ) {}

  get(): Promise<GatewayCheck> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.value;
    const value = this.fetchReport();
    this.cached = { at: now, value };
    return value;
  }

  private async fetchReport(): Promise<GatewayCheck> {
    const url = `${this.internalUrl.replace(/\/+$/, "")}${INTERNAL_ROUTES_PATH}`;
    try {
      const res = await fetchWithTimeout(
        url,
        { headers: { "user-agent": CONTROLLER_USER_AGENT, accept: "application/json" } },
        this.timeoutMs,
      );
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        return { ok: false, message: `GET ${url} answered ${res.status}` };
      }
      const body: unknown = await res.json();
      if (!isRoutesReport(body)) return { ok: false, message: `GET ${url} did not return a routes report` };
      return { ok: true, report: body };
    } catch (err) {
      return {
        ok: false,
        message: `the gateway's internal endpoint ${url} is unreachable (${err instanceof Error ? err.message : String(err)}); is the gateway running?`,
      };
    }
  }
}
