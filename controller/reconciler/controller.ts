/**
 * Wires informers to work queues and reconcilers. Every reconcile reads from the informer
 * caches, runs its checks, and writes status only when it changed. Requeues use backoff for
 * failures and a steady interval for health re-checks.
 */
import type * as k8s from "@kubernetes/client-node";
import {
  type AgentIdentityObject,
  errorText,
  isApiStatus,
  PLURALS,
  type Plural,
  type PurchaseRequestObject,
  patchStatus,
  type ServiceOfferObject,
  type WatchedCache,
  watchCustomObjects,
} from "../shared/kube";
import { joinUrl, offerKey, resolveClaims, type UpstreamOverrides, upstreamBaseUrl } from "../shared/offers";
import { computeIdentityStatus } from "./agentIdentity";
import { GatewayRoutesClient, probeUpstream } from "./checks";
import { jsonEqual } from "./conditions";
import { probeSeller } from "./paymentProbe";
import { computePurchaseStatus, parsePurchaseSpec } from "./purchaseRequest";
import { Backoff, WorkQueue } from "./queue";
import { computeOfferStatus, type UpstreamCheck } from "./serviceOffer";

export interface ControllerOptions {
  readonly kc: k8s.KubeConfig;
  readonly namespace: string;
  readonly gatewayInternalUrl: string;
  readonly publicBaseUrl?: string;
  readonly upstreamOverrides: UpstreamOverrides;
  /** Re-check interval for healthy offers (and the cap of failure backoff). */
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly maxBackoffMs: number;
  readonly purchaseProbeIntervalMs: number;
  readonly log: (msg: string) => void;
}

export const DEFAULT_IDENTITY_NAME = "default";

const KIND = { offer: "so", identity: "aid", purchase: "pr" } as const;

export class Controller {
  private offers!: WatchedCache<ServiceOfferObject>;
  private identities!: WatchedCache<AgentIdentityObject>;
  private purchases!: WatchedCache<PurchaseRequestObject>;
  private readonly queue: WorkQueue;
  private readonly backoff: Backoff;
  private readonly gateway: GatewayRoutesClient;
  private readonly generations = new Map<string, number | undefined>();

  constructor(private readonly opts: ControllerOptions) {
    this.queue = new WorkQueue((key) => this.reconcile(key), 2);
    this.backoff = new Backoff(500, opts.maxBackoffMs);
    this.gateway = new GatewayRoutesClient(opts.gatewayInternalUrl, opts.probeTimeoutMs);
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
      // Our own status writes bump resourceVersion, not generation: they need no re-reconcile
      // of every offer, only of the identities that summarize readiness.
      if (kind !== "update" || this.generationChanged(KIND.offer, obj)) this.enqueueAll(KIND.offer);
      if (kind === "delete") this.generations.delete(`${KIND.offer}/${obj.metadata?.name}`);
      this.enqueueAll(KIND.identity);
    };
    this.offers.on("add", (o) => offerEvent(o, "add"));
    this.offers.on("update", (o) => offerEvent(o, "update"));
    this.offers.on("delete", (o) => offerEvent(o, "delete"));
    const identityEvent = (obj: AgentIdentityObject, kind: "add" | "update" | "delete") => {
      if (kind !== "update" || this.generationChanged(KIND.identity, obj)) {
        this.queue.add(`${KIND.identity}/${obj.metadata?.name}`);
        this.enqueueAll(KIND.offer);
      }
    };
    this.identities.on("add", (o) => identityEvent(o, "add"));
    this.identities.on("update", (o) => identityEvent(o, "update"));
    this.identities.on("delete", (o) => identityEvent(o, "delete"));
    const purchaseEvent = (obj: PurchaseRequestObject, kind: "add" | "update" | "delete") => {
      if (kind !== "update" || this.generationChanged(KIND.purchase, obj)) {
        this.queue.add(`${KIND.purchase}/${obj.metadata?.name}`);
      }
    };
    this.purchases.on("add", (o) => purchaseEvent(o, "add"));
    this.purchases.on("update", (o) => purchaseEvent(o, "update"));
    this.purchases.on("delete", (o) => purchaseEvent(o, "delete"));
    this.enqueueAll(KIND.offer);
    this.enqueueAll(KIND.identity);
    this.enqueueAll(KIND.purchase);
    log(`controller: watching ServiceOffers, AgentIdentities and PurchaseRequests in ${namespace}`);
  }

  async stop(): Promise<void> {
    await this.queue.shutdown();
    await Promise.all([this.offers?.stop(), this.identities?.stop(), this.purchases?.stop()]);
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
      this.generations.set(`${kind}/${obj.metadata?.name}`, obj.metadata?.generation);
      this.queue.add(`${kind}/${obj.metadata?.name}`);
    }
  }

  private async reconcile(key: string): Promise<void> {
    const [kind, name] = key.split("/", 2);
    try {
      if (kind === KIND.offer) await this.reconcileOffer(key, name);
      else if (kind === KIND.identity) await this.reconcileIdentity(name);
      else if (kind === KIND.purchase) await this.reconcilePurchase(key, name);
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
    const verdict = resolveClaims(this.offers.list()).get(offerKey(obj));
    if (!verdict) return;
    let upstream: UpstreamCheck;
    if (verdict.spec) {
      const base = upstreamBaseUrl(verdict.spec, this.opts.namespace, this.opts.upstreamOverrides);
      upstream = base.ok
        ? await probeUpstream(joinUrl(base.url, verdict.spec.upstream.healthPath), this.opts.probeTimeoutMs)
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
      identity: this.identities.get(DEFAULT_IDENTITY_NAME),
      publicBaseUrl: this.opts.publicBaseUrl,
      now: new Date(),
    });
    await this.writeStatus(PLURALS.serviceOffer, current, status);
    const ready = status.conditions?.find((c) => c.type === "Ready")?.status === "True";
    if (ready) {
      this.backoff.reset(key);
      this.queue.add(key, this.opts.probeIntervalMs);
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

  private async writeStatus(
    plural: Plural,
    obj: k8s.KubernetesObject & { status?: object },
    status: object,
  ): Promise<void> {
    if (jsonEqual(obj.status ?? {}, status)) return;
    const name = obj.metadata?.name ?? "";
    try {
      await patchStatus(
        this.opts.kc,
        plural,
        this.opts.namespace,
        name,
        withRemovals(obj.status ?? {}, status),
      );
    } catch (err) {
      if (isApiStatus(err, 404)) return; // deleted meanwhile
      throw err;
    }
    this.opts.log(`status ${plural}/${name}: ${summary(status)}`);
  }
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
