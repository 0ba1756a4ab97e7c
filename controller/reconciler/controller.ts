/**
 * Wires informers to work queues and reconcilers. Every reconcile reads from the informer
 * caches, runs its checks, and writes status only when it changed. Requeues use backoff for
 * failures and a steady interval for health re-checks.
 *
 * Throughput: reconciles run `concurrency` at a time; upstream probes go through one bounded
 * keep-alive pool and are shared per health URL (offers on one upstream cost one probe); path
 * claims are resolved once per change of the offer set, not once per reconcile.
 */

import type * as k8s from "@kubernetes/client-node";
import { AGENT_IDENTITY_NAME, PLURALS, type Plural } from "../../api/contract";
import {
  type AgentIdentityObject,
  errorText,
  isApiStatus,
  type PurchaseRequestObject,
  type ServiceOfferObject,
  StatusWriter,
  type WatchedCache,
  watchCustomObjects,
} from "../shared/kube";
import {
  type ClaimVerdict,
  joinUrl,
  offerKey,
  resolveClaims,
  type UpstreamOverrides,
  upstreamBaseUrl,
} from "../shared/offers";
import { computeIdentityStatus } from "./agentIdentity";
import { GatewayRoutesClient, UpstreamProber } from "./checks";
import { jsonEqual } from "./conditions";
import type { ControllerMetrics } from "./metrics";
import { probeSeller } from "./paymentProbe";
import { computePurchaseStatus, parsePurchaseSpec } from "./purchaseRequest";
import { Backoff, WorkQueue } from "./queue";
import { computeOfferStatus, type UpstreamCheck } from "./serviceOffer";

export interface ControllerOptions {
  readonly kc: k8s.KubeConfig;
  readonly namespace: string;
  readonly gatewayInternalUrl: string;
  readonly publicBaseUrl?: string | undefined;
  readonly upstreamOverrides: UpstreamOverrides;
  /** Re-check interval for healthy offers (and the cap of failure backoff). */
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  /** How long one upstream probe answer is shared by the offers behind the same health URL. */
  readonly probeCacheTtlMs: number;
  /** Reconciles in flight at once. */
  readonly concurrency: number;
  readonly maxBackoffMs: number;
  readonly purchaseProbeIntervalMs: number;
  readonly log: (msg: string) => void;
  /** Reconcile counts, durations and errors per kind. */
  readonly metrics?: ControllerMetrics;
}

const KIND = { offer: "so", identity: "aid", purchase: "pr" } as const;
/** Metric labels: the kinds' names, not the queue's short keys. */
const KIND_NAMES: Record<string, string> = {
  so: "ServiceOffer",
  aid: "AgentIdentity",
  pr: "PurchaseRequest",
};

export class Controller {
  private offers!: WatchedCache<ServiceOfferObject>;
  private identities!: WatchedCache<AgentIdentityObject>;
  private purchases!: WatchedCache<PurchaseRequestObject>;
  private readonly queue: WorkQueue;
  private readonly backoff: Backoff;
  private readonly gateway: GatewayRoutesClient;
  private readonly prober: UpstreamProber;
  private readonly statuses: StatusWriter;
  private readonly generations = new Map<string, number | undefined>();
  /** What each offer contributes to path claims: uid, generation (spec) and deletion. */
  private readonly claimInputs = new Map<string, string>();
  /** Path and hostname claims over all offers, until an offer's claim inputs change. */
  private claims: Map<string, ClaimVerdict> | undefined;
  /** Our last status write per object, until the informer cache shows it (see writeStatus). */
  private readonly written = new Map<
    string,
    { readonly over: string | undefined; readonly status: object }
  >();
  /** Kinds to re-enqueue wholesale at the end of this turn (a burst of events enqueues once). */
  private readonly enqueueAllPending = new Set<(typeof KIND)[keyof typeof KIND]>();

  private publicBaseUrl: string | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.publicBaseUrl = opts.publicBaseUrl;
    this.queue = new WorkQueue((key) => this.reconcile(key), opts.concurrency);
    this.backoff = new Backoff(500, opts.maxBackoffMs);
    this.gateway = new GatewayRoutesClient(opts.gatewayInternalUrl, opts.probeTimeoutMs);
    this.prober = new UpstreamProber({
      timeoutMs: opts.probeTimeoutMs,
      // Never longer than half the re-check interval: a periodic re-check sees a fresh answer.
      cacheTtlMs: Math.min(opts.probeCacheTtlMs, Math.floor(opts.probeIntervalMs / 2)),
    });
    this.statuses = new StatusWriter(opts.kc, opts.namespace, { maxSockets: opts.concurrency });
  }

  /**
   * The public origin behind offer endpoints: configured, or followed at run time (a quick
   * tunnel's URL). A change re-reconciles every offer.
   */
  setPublicBaseUrl(url: string): void {
    if (url === this.publicBaseUrl) return;
    this.publicBaseUrl = url;
    if (this.offers) this.enqueueAllSoon(KIND.offer);
  }

  synced(): boolean {
    return this.offers?.synced() && this.identities?.synced() && this.purchases?.synced();
  }

  async start(): Promise<void> {
    const { kc, namespace, log } = this.opts;
    [this.offers, this.identities, this.purchases] = await Promise.all([
      watchCustomObjects<ServiceOfferObject>(kc, PLURALS.serviceOffer, namespace, log),
      watchCustomObjects<AgentIdentityObject>(kc, PLURALS.agentIdentity, namespace, log),
      watchCustomObjects<PurchaseRequestObject>(kc, PLURALS.purchaseRequest, namespace, log),
    ]);
    const offerEvent = (obj: ServiceOfferObject, kind: "add" | "update" | "delete") => {
      // Our own status writes bump resourceVersion, not generation: they change no claim and
      // need no re-reconcile of every offer, only of the identities that summarize readiness.
      // A new, changed or deleted offer can move a path claim to or from any other offer.
      if (this.claimInputsChanged(obj, kind)) this.enqueueAllSoon(KIND.offer);
      if (kind === "delete") this.written.delete(`${PLURALS.serviceOffer}/${obj.metadata?.name}`);
      this.enqueueAllSoon(KIND.identity);
    };
    this.offers.on("add", (o) => offerEvent(o, "add"));
    this.offers.on("update", (o) => offerEvent(o, "update"));
    this.offers.on("delete", (o) => offerEvent(o, "delete"));
    const identityEvent = (obj: AgentIdentityObject, kind: "add" | "update" | "delete") => {
      if (kind === "delete") this.written.delete(`${PLURALS.agentIdentity}/${obj.metadata?.name}`);
      if (kind !== "update" || this.generationChanged(KIND.identity, obj)) {
        this.queue.add(`${KIND.identity}/${obj.metadata?.name}`);
        this.enqueueAllSoon(KIND.offer);
      }
    };
    this.identities.on("add", (o) => identityEvent(o, "add"));
    this.identities.on("update", (o) => identityEvent(o, "update"));
    this.identities.on("delete", (o) => identityEvent(o, "delete"));
    const purchaseEvent = (obj: PurchaseRequestObject, kind: "add" | "update" | "delete") => {
      if (kind === "delete") this.written.delete(`${PLURALS.purchaseRequest}/${obj.metadata?.name}`);
      if (kind !== "update" || this.generationChanged(KIND.purchase, obj)) {
        this.queue.add(`${KIND.purchase}/${obj.metadata?.name}`);
      }
    };
    this.purchases.on("add", (o) => purchaseEvent(o, "add"));
    this.purchases.on("update", (o) => purchaseEvent(o, "update"));
    this.purchases.on("delete", (o) => purchaseEvent(o, "delete"));
    for (const obj of this.offers.list()) this.claimInputsChanged(obj, "add");
    this.enqueueAll(KIND.offer);
    this.enqueueAll(KIND.identity);
    this.enqueueAll(KIND.purchase);
    log(`controller: watching ServiceOffers, AgentIdentities and PurchaseRequests in ${namespace}`);
  }

  async stop(): Promise<void> {
    await this.queue.shutdown();
    await Promise.all([this.offers?.stop(), this.identities?.stop(), this.purchases?.stop()]);
    this.prober.close();
    this.statuses.close();
  }

  /** Records what `obj` contributes to path claims; true (and claims dropped) if that changed. */
  private claimInputsChanged(obj: ServiceOfferObject, kind: "add" | "update" | "delete"): boolean {
    const name = obj.metadata?.name ?? "";
    const before = this.claimInputs.get(name);
    const now =
      kind === "delete"
        ? undefined
        : `${obj.metadata?.uid}/${obj.metadata?.generation}/${obj.metadata?.deletionTimestamp ?? ""}`;
    if (before === now) return false;
    if (now === undefined) this.claimInputs.delete(name);
    else this.claimInputs.set(name, now);
    this.claims = undefined;
    return true;
  }

  private currentClaims(): Map<string, ClaimVerdict> {
    this.claims ??= resolveClaims(this.offers.list());
    return this.claims;
  }

  private enqueueAllSoon(kind: (typeof KIND)[keyof typeof KIND]): void {
    if (this.enqueueAllPending.size === 0) {
      setImmediate(() => {
        const kinds = [...this.enqueueAllPending];
        this.enqueueAllPending.clear();
        for (const k of kinds) this.enqueueAll(k);
      });
    }
    this.enqueueAllPending.add(kind);
  }

  private generationChanged(kind: string, obj: k8s.KubernetesObject): boolean {
    const key = `${kind}/${obj.metadata?.name}`;
    const before = this.generations.get(key);
    const now = obj.metadata?.generation;
    this.generations.set(key, now);
    return before !== now;
  }

  private enqueueAll(kind: (typeof KIND)[keyof typeof KIND]): void {
    const cache =
      kind === KIND.offer ? this.offers : kind === KIND.identity ? this.identities : this.purchases;
    for (const obj of cache.list()) {
      if (kind !== KIND.offer)
        this.generations.set(`${kind}/${obj.metadata?.name}`, obj.metadata?.generation);
      this.queue.add(`${kind}/${obj.metadata?.name}`);
    }
  }

  private async reconcile(key: string): Promise<void> {
    // Keys are `<kind>/<name>`; Kubernetes names never contain a slash.
    const slash = key.indexOf("/");
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const run = async () => {
      if (kind === KIND.offer) await this.reconcileOffer(key, name);
      else if (kind === KIND.identity) await this.reconcileIdentity(name);
      else if (kind === KIND.purchase) await this.reconcilePurchase(key, name);
    };
    try {
      const metrics = this.opts.metrics;
      await (metrics ? metrics.observe(KIND_NAMES[kind] ?? kind, run) : run());
    } catch (err) {
      const delay = this.backoff.next(key);
      this.opts.log(`reconcile ${key} failed: ${errorText(err)}; retrying in ${delay} ms`);
      this.queue.add(key, delay);
    }
  }

  private async reconcileOffer(key: string, name: string): Promise<void> {
    const obj = this.offers.get(name);
    if (!obj || obj.metadata?.deletionTimestamp) {
      this.backoff.reset(key);
      return;
    }
    const verdict = this.currentClaims().get(offerKey(obj));
    if (!verdict) return;
    let upstream: UpstreamCheck;
    if (verdict.spec) {
      const base = upstreamBaseUrl(verdict.spec, this.opts.namespace, this.opts.upstreamOverrides);
      upstream = base.ok
        ? await this.prober.probe(joinUrl(base.url, verdict.spec.upstream.healthPath))
        : { ok: false, reason: "InvalidUpstream", message: base.message };
    } else {
      upstream = { ok: false, reason: "InvalidSpec", message: verdict.ok ? "" : verdict.message };
    }
    const gateway = await this.gateway.get();
    // The cache may have moved on while we probed: compute against the newest object.
    const current = this.offers.get(name) ?? obj;
    const status = computeOfferStatus(current, {
      verdict,
      upstream,
      gateway,
      identity: this.identities.get(AGENT_IDENTITY_NAME),
      publicBaseUrl: this.publicBaseUrl,
      now: new Date(),
    });
    await this.writeStatus(PLURALS.serviceOffer, current, status);
    const ready = status.conditions?.find((c) => c.type === "Ready")?.status === "True";
    if (ready) {
      this.backoff.reset(key);
      this.queue.add(key, jitter(this.opts.probeIntervalMs));
    } else {
      this.queue.add(key, Math.min(this.backoff.next(key), this.opts.probeIntervalMs));
    }
  }

  private async reconcileIdentity(name: string): Promise<void> {
    const obj = this.identities.get(name);
    if (!obj || obj.metadata?.deletionTimestamp) return;
    const status = computeIdentityStatus(obj, this.offers.list(), new Date());
    await this.writeStatus(PLURALS.agentIdentity, obj, status);
  }

  private async reconcilePurchase(key: string, name: string): Promise<void> {
    const obj = this.purchases.get(name);
    if (!obj || obj.metadata?.deletionTimestamp) {
      this.backoff.reset(key);
      return;
    }
    const parsed = parsePurchaseSpec(obj);
    const verdict = parsed.success
      ? await probeSeller(parsed.data, this.opts.probeTimeoutMs)
      : ({
          ok: false,
          reason: "InvalidSpec",
          message: `the spec does not match the PurchaseRequest schema: ${parsed.error.issues.map((i) => `spec.${i.path.join(".")}: ${i.message}`).join("; ")}`,
        } as const);
    const current = this.purchases.get(name) ?? obj;
    await this.writeStatus(
      PLURALS.purchaseRequest,
      current,
      computePurchaseStatus(current, verdict, new Date()),
    );
    if (verdict.ok) {
      this.backoff.reset(key);
      this.queue.add(key, this.opts.purchaseProbeIntervalMs);
    } else {
      this.queue.add(key, Math.min(this.backoff.next(key), this.opts.purchaseProbeIntervalMs));
    }
  }

  /**
   * Writes `status` unless the object already has it. Right after a write the informer cache
   * still holds the object as it was (until the watch event arrives): a reconcile in between
   * compares against what we wrote over that version, so it does not write the same again.
   */
  private async writeStatus(
    plural: Plural,
    obj: k8s.KubernetesObject & { status?: object },
    status: object,
  ): Promise<void> {
    const name = obj.metadata?.name ?? "";
    const key = `${plural}/${name}`;
    const version = obj.metadata?.resourceVersion;
    const pending = this.written.get(key);
    const observed = pending && pending.over === version ? pending.status : (obj.status ?? {});
    if (pending && pending.over !== version) this.written.delete(key);
    if (jsonEqual(observed, status)) return;
    try {
      await this.statuses.patch(plural, name, withRemovals(observed, status));
    } catch (err) {
      this.written.delete(key);
      if (isApiStatus(err, 404)) return; // deleted meanwhile
      throw err;
    }
    this.written.set(key, { over: version, status });
    this.opts.log(`status ${plural}/${name}: ${summary(status)}`);
  }
}

/** `ms` ± 10%, so offers created together do not all re-check in the same instant. */
function jitter(ms: number): number {
  return Math.round(ms * (0.9 + Math.random() * 0.2));
}

/** A merge patch removes a key only when it is sent as null. */
export function withRemovals(previous: object, next: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...next };
  for (const key of Object.keys(previous)) if (!(key in next)) out[key] = null;
  return out;
}

function summary(status: object): string {
  const conditions =
    (status as { conditions?: { type: string; status: string; reason: string }[] }).conditions ?? [];
  return conditions.map((c) => `${c.type}=${c.status}(${c.reason})`).join(" ");
}
