/**
 * The controller's outbound checks: upstream health (through a shared, bounded keep-alive pool,
 * with answers shared per URL) and the gateway's held routes.
 */
import * as http from "node:http";
import * as https from "node:https";
import { errorMessage } from "../shared/log";
import { CONTROLLER_USER_AGENT, fetchWithTimeout } from "../shared/outbound";
import { INTERNAL_ROUTES_PATH, isRoutesReport } from "../shared/routesReport";
import { ProbeCache } from "./probeCache";
import type { GatewayCheck, UpstreamCheck } from "./serviceOffer";

export interface UpstreamProberOptions {
  /** How long an upstream has to answer once the probe has a connection (connect included). */
  readonly timeoutMs: number;
  /** How long a settled answer is shared by the offers behind the same health URL. */
  readonly cacheTtlMs: number;
  /** Connections per upstream host; probes beyond it wait for a free one. */
  readonly maxSocketsPerHost?: number;
  /** Connections over all upstream hosts. */
  readonly maxSockets?: number;
}

/**
 * Probes upstream health URLs: GET, only 2xx is healthy (a 404 health page is not a healthy
 * upstream). Connections are kept alive in one bounded pool, concurrent probes of one URL share
 * one request, and an answer is reused for `cacheTtlMs`.
 */
export class UpstreamProber {
  private readonly agents: { readonly "http:": http.Agent; readonly "https:": https.Agent };
  private readonly cache: ProbeCache<UpstreamCheck>;

  constructor(private readonly opts: UpstreamProberOptions) {
    const pool = {
      keepAlive: true,
      maxSockets: opts.maxSocketsPerHost ?? 8,
      maxTotalSockets: opts.maxSockets ?? 64,
      maxFreeSockets: opts.maxSocketsPerHost ?? 8,
      scheduling: "lifo" as const,
    };
    this.agents = { "http:": new http.Agent(pool), "https:": new https.Agent(pool) };
    this.cache = new ProbeCache(opts.cacheTtlMs);
  }

  probe(url: URL): Promise<UpstreamCheck> {
    return this.cache.get(url.toString(), () => this.check(url));
  }

  /** Probes actually sent (cache misses). */
  get requests(): number {
    return this.cache.checks;
  }

  close(): void {
    this.agents["http:"].destroy();
    this.agents["https:"].destroy();
  }

  private async check(url: URL): Promise<UpstreamCheck> {
    let status: number;
    try {
      status = await this.get(url).catch((err: unknown) => {
        // A kept-alive connection the upstream closed meanwhile: retry once on a new one.
        if (err instanceof ReusedSocketError) return this.get(url);
        throw err;
      });
    } catch (err) {
      return {
        ok: false,
        reason: "Unreachable",
        message: `GET ${url} failed: ${errorMessage(err)}`,
      };
    }
    if (status >= 200 && status < 300) return { ok: true, url: url.toString(), status };
    return {
      ok: false,
      reason: "Unhealthy",
      message: `GET ${url} answered ${status}; the health path must answer 2xx`,
    };
  }

  /** One GET; resolves with the status code once the response head arrives. */
  private get(url: URL): Promise<number> {
    const agent = url.protocol === "https:" ? this.agents["https:"] : this.agents["http:"];
    const request = url.protocol === "https:" ? https.request : http.request;
    const timeoutMs = this.opts.timeoutMs;
    return new Promise<number>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const req = request(url, {
        method: "GET",
        agent,
        headers: { "user-agent": CONTROLLER_USER_AGENT, accept: "*/*" },
      });
      // The clock starts when the probe has a connection (new or kept alive), not while it waits
      // for one in the pool: the timeout judges the upstream, not this process's queue.
      req.once("socket", () => {
        timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      req.once("response", (res) => {
        resolve(res.statusCode ?? 0);
        // Read the body off so the connection can serve the next probe; the timer still
        // bounds a body that never ends.
        res.resume();
        res.once("end", () => clearTimeout(timer));
        res.on("error", () => clearTimeout(timer));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
          reject(new ReusedSocketError(err));
        } else {
          reject(err);
        }
      });
      req.once("close", () => clearTimeout(timer));
      req.end();
    });
  }
}

class ReusedSocketError extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
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
        message: `the gateway's internal endpoint ${url} is unreachable (${errorMessage(err)}); is the gateway running?`,
      };
    }
  }
}
