/**
 * Reads the facilitator's GET /supported (through @x402/core's client) at start and every
 * `intervalMs`; after a failure it retries sooner, doubling from `retryMinMs` up to `intervalMs`.
 * What the answers mean for offers is decided in payments/facilitatorSupport.ts.
 */
import type { FacilitatorClient } from "@x402/core/server";
import {
  type FacilitatorView,
  facilitatorView,
  type SupportObservations,
} from "../payments/facilitatorSupport";
import { errorMessage, type LogFn } from "../shared/log";

export interface FacilitatorWatchOptions {
  readonly facilitator: Pick<FacilitatorClient, "getSupported">;
  /** For messages: where the facilitator is. */
  readonly url: string;
  readonly intervalMs: number;
  /** How long the last answer is used while reads fail. */
  readonly maxStaleMs: number;
  readonly retryMinMs?: number;
  readonly log: LogFn;
  readonly now?: () => number;
}

export class FacilitatorWatch {
  private obs: SupportObservations;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private lastState: FacilitatorView["state"] | undefined;
  /** Changes whenever what the gateway acts on may have changed (memo key for the route table). */
  private changes = 0;
  private readonly first: Promise<void>;

  constructor(private readonly opts: FacilitatorWatchOptions) {
    this.obs = { url: opts.url };
    this.first = this.poll();
  }

  /** Resolves after the first read (success or failure), so the gateway starts knowing. */
  ready(): Promise<void> {
    return this.first;
  }

  view(): FacilitatorView {
    return facilitatorView(this.obs, this.now(), this.opts.maxStaleMs);
  }

  /** A counter that moves when the view may have changed. */
  version(): number {
    // The view also changes by time alone (the last answer grows stale): fold it in.
    return this.changes * 2 + (this.view().state === "known" ? 0 : 1);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private async poll(): Promise<void> {
    const { log, url } = this.opts;
    try {
      const supported = await this.opts.facilitator.getSupported();
      const changed = JSON.stringify(supported) !== JSON.stringify(this.obs.last?.supported);
      // A success supersedes any earlier failure.
      this.obs = { url, last: { supported, at: this.now() } };
      if (changed) {
        this.changes++;
        log("gateway: facilitator /supported read", {
          facilitator: url,
          kinds: supported.kinds.map((k) => `v${k.x402Version} ${k.scheme} ${k.network}`).join(", "),
          extensions: (supported.extensions ?? []).join(", "),
        });
      }
      this.failures = 0;
    } catch (err) {
      const message = errorMessage(err);
      this.obs = { ...this.obs, lastError: { message, at: this.now() } };
      this.failures++;
      log("gateway: cannot read the facilitator's /supported", {
        level: "warn",
        facilitator: url,
        error: message,
        failures: this.failures,
      });
    }
    const state = this.view().state;
    if (state !== this.lastState) {
      if (this.lastState !== undefined)
        log(`gateway: facilitator ${state === "known" ? "reachable again" : "unreachable: offers paused"}`, {
          level: state === "known" ? "info" : "error",
          facilitator: url,
        });
      this.lastState = state;
    }
    if (this.stopped) return;
    const retryMin = this.opts.retryMinMs ?? 1_000;
    const delay =
      this.failures === 0
        ? this.opts.intervalMs
        : Math.min(this.opts.intervalMs, retryMin * 2 ** Math.min(this.failures - 1, 16));
    this.timer = setTimeout(() => void this.poll(), delay);
    this.timer.unref();
  }
}
