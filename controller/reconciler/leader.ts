/**
 * Leader election on a coordination.k8s.io Lease: one controller replica reconciles at a time.
 * Optimistic concurrency (resourceVersion) decides races; a holder that stops renewing loses
 * the lease after leaseDuration; a clean shutdown releases it at once.
 */
import * as k8s from "@kubernetes/client-node";
import { errorText, isApiStatus } from "../shared/kube";

export interface LeaderOptions {
  readonly namespace: string;
  readonly leaseName: string;
  readonly identity: string;
  readonly leaseDurationSeconds: number;
  /** How often the holder renews and candidates retry. */
  readonly retryMs: number;
  readonly log: (msg: string) => void;
}

function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value === "string") return new Date(value);
  return undefined;
}

function microNow(): k8s.V1MicroTime {
  return new k8s.V1MicroTime();
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private renewTimer: NodeJS.Timeout | undefined;
  /** The renew round in flight, so release() can wait for it instead of racing it. */
  private renewing: Promise<void> | undefined;
  private lastRenew = 0;
  private leading = false;
  /** Set by release(): no renew round may start (or re-acquire the lease) afterwards. */
  private released = false;

  constructor(
    kc: k8s.KubeConfig,
    private readonly opts: LeaderOptions,
  ) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Waits until this process holds the lease; resolves false if `signal` aborts first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    let announced = false;
    while (!signal.aborted && !this.released) {
      try {
        if (await this.tryAcquireOrRenew()) {
          this.leading = true;
          // Shut down while the write was in flight: hand the lease back rather than keep it.
          if (signal.aborted || this.released) {
            await this.release();
            return false;
          }
          this.lastRenew = Date.now();
          this.opts.log(
            `leader: acquired lease ${this.opts.namespace}/${this.opts.leaseName} as ${this.opts.identity}`,
          );
          return true;
        }
        if (!announced) {
          this.opts.log(`leader: lease ${this.opts.leaseName} is held by another replica; waiting`);
          announced = true;
        }
      } catch (err) {
        this.opts.log(`leader: cannot read or write lease ${this.opts.leaseName}: ${errorText(err)}`);
      }
      await sleep(this.opts.retryMs, signal);
    }
    return false;
  }

  /** Renews periodically; calls `onLost` once if the lease cannot be renewed before it expires. */
  keepRenewing(onLost: (why: string) => void): void {
    const round = async () => {
      try {
        if (await this.tryAcquireOrRenew()) {
          this.lastRenew = Date.now();
        } else {
          this.leading = false;
          onLost("another replica took the lease");
          return;
        }
      } catch (err) {
        if (Date.now() - this.lastRenew > this.opts.leaseDurationSeconds * 1000) {
          this.leading = false;
          onLost(`could not renew the lease for ${this.opts.leaseDurationSeconds}s: ${errorText(err)}`);
          return;
        }
      }
      schedule();
    };
    const schedule = () => {
      if (this.released) return;
      this.renewTimer = setTimeout(() => {
        this.renewTimer = undefined;
        if (this.released) return;
        this.renewing = round().finally(() => {
          this.renewing = undefined;
        });
      }, this.opts.retryMs);
    };
    schedule();
  }

  /**
   * Gives the lease up so a successor can start at once (best effort). Stops renewing first and
   * waits for a renew round in flight, which could otherwise write the lease back after us.
   */
  async release(): Promise<void> {
    this.released = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    await this.renewing?.catch(() => undefined);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({
        name: this.opts.leaseName,
        namespace: this.opts.namespace,
      });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      // Released: no holder, no renew or acquire time (absent fields, as the API server stores them).
      const { holderIdentity: _holder, renewTime: _renewed, acquireTime: _acquired, ...kept } = lease.spec;
      lease.spec = { ...kept, leaseDurationSeconds: 1 };
      await this.api.replaceNamespacedLease({
        name: this.opts.leaseName,
        namespace: this.opts.namespace,
        body: lease,
      });
      this.opts.log("leader: released the lease");
    } catch (err) {
      this.opts.log(
        `leader: could not release the lease (${errorText(err)}); a successor waits for it to expire`,
      );
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName: name, identity } = this.opts;
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isApiStatus(err, 404)) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.opts.leaseDurationSeconds,
              acquireTime: microNow(),
              renewTime: microNow(),
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createErr) {
        if (isApiStatus(createErr, 409)) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewed = toDate(spec.renewTime)?.getTime() ?? 0;
    const duration = (spec.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000;
    const expired = !holder || Date.now() > renewed + duration;
    if (holder !== identity && !expired) return false;
    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.opts.leaseDurationSeconds,
      renewTime: microNow(),
      ...(takingOver ? { acquireTime: microNow() } : {}),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (isApiStatus(err, 409)) return false;
      throw err;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
