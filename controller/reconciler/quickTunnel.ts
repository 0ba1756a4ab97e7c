/**
 * A quick tunnel's public URL is random and changes whenever cloudflared restarts; cloudflared
 * reports it on its metrics server (`GET /quicktunnel` → `{"hostname": "<name>.trycloudflare.com"}`).
 * The controller follows it, so offer status shows the endpoint buyers can reach right now.
 */
import { errorText } from "../shared/kube";

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/i;

/** The public origin cloudflared reports, or undefined while it has none yet. */
export async function readQuickTunnelUrl(metricsUrl: string, timeoutMs: number): Promise<string | undefined> {
  const res = await fetch(`${metricsUrl.replace(/\/+$/, "")}/quicktunnel`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`${metricsUrl}/quicktunnel answered ${res.status}`);
  const body = (await res.json()) as { hostname?: unknown };
  const hostname = typeof body?.hostname === "string" ? body.hostname.trim() : "";
  if (hostname === "") return undefined; // the tunnel is still being set up
  if (!HOSTNAME.test(hostname))
    throw new Error(`${metricsUrl}/quicktunnel reported "${hostname}", not a hostname`);
  return `https://${hostname.toLowerCase()}`;
}

export interface QuickTunnelWatchOptions {
  readonly metricsUrl: string;
  /** Polling while no URL is known yet, and after a failure. */
  readonly searchIntervalMs: number;
  /** Polling once a URL is known (cloudflared may restart with a new one). */
  readonly followIntervalMs: number;
  readonly timeoutMs: number;
  readonly onUrl: (url: string) => void;
  readonly log: (message: string) => void;
}

/** Polls cloudflared until stopped; calls `onUrl` with each new URL (once per change). */
export class QuickTunnelWatch {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private current?: string;
  private lastError: string | undefined;

  constructor(private readonly opts: QuickTunnelWatchOptions) {}

  start(): void {
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async poll(): Promise<void> {
    let next = this.opts.searchIntervalMs;
    try {
      const url = await readQuickTunnelUrl(this.opts.metricsUrl, this.opts.timeoutMs);
      this.lastError = undefined;
      if (url) {
        next = this.opts.followIntervalMs;
        if (url !== this.current) {
          this.current = url;
          this.opts.log(`controller: the quick tunnel's public URL is ${url}`);
          this.opts.onUrl(url);
        }
      }
    } catch (err) {
      // Logged once per distinct error: cloudflared may simply not be up yet.
      const message = errorText(err);
      if (message !== this.lastError) this.opts.log(`controller: quick tunnel URL not known yet: ${message}`);
      this.lastError = message;
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.poll(), next);
  }
}
