/**
 * The manager: informers on the three kinds, one work queue, and one reconciler per kind
 * (serviceOffer.ts, agentIdentity.ts, purchaseRequest.ts). Events become keys through
 * events.ts; each key is `<kind>/<name>` and goes to its kind's reconciler. Requeues use
 * per-key backoff for failures and a steady interval for health re-checks.
 *
 * Throughput: reconciles run `concurrency` at a time; upstream probes go through one bounded
 * keep-alive pool and are shared per health URL (offers on one upstream cost one probe); path
 * claims are resolved once per change of the offer set, not once per reconcile.
 */
import type * as k8s from "@kubernetes/client-node";
import { KINDS, type KindName, PLURALS } from "../../api/contract";
import { DRAIN_FINALIZER } from "../../api/drain";
import {
  type AgentIdentityObject,
  errorText,
  holdFinalizer,
  type PurchaseRequestObject,
  releaseFinalizer,
  type ServiceOfferObject,
  StatusWriter,
  type WatchedCache,
  watchCustomObjects,
} from "../shared/kube";
import type { UpstreamOverrides } from "../shared/offers";
import { AgentIdentityReconciler } from "./agentIdentity";
import { GatewayRoutesClient, UpstreamProber } from "./checks";
import { EventRouter, type EventType } from "./events";
import type { ControllerMetrics } from "./metrics";
import { PurchaseRequestReconciler } from "./purchaseRequest";
import { Backoff, WorkQueue } from "./queue";
import type { Reconciler } from "./reconciler";
import { ServiceOfferReconciler } from "./serviceOffer";
import { StatusUpdater } from "./status";

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

interface Running {
  readonly caches: {
    readonly serviceOffer: WatchedCache<ServiceOfferObject>;
    readonly agentIdentity: WatchedCache<AgentIdentityObject>;
    readonly purchaseRequest: WatchedCache<PurchaseRequestObject>;
  };
  readonly reconcilers: Readonly<Record<KindName, Reconciler>>;
  readonly offers: ServiceOfferReconciler;
}

export class Controller {
  private running: Running | undefined;
  private readonly queue: WorkQueue;
  private readonly backoff: Backoff;
  private readonly gateway: GatewayRoutesClient;
  private readonly prober: UpstreamProber;
  private readonly statuses: StatusUpdater;
  private readonly router: EventRouter;
  /** Kinds to re-enqueue wholesale at the end of this turn (a burst of events enqueues once). */
  private readonly enqueueAllPending = new Set<KindName>();
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
    this.statuses = new StatusUpdater(
      new StatusWriter(opts.kc, opts.namespace, { maxSockets: opts.concurrency }),
      opts.log,
    );
    this.router = new EventRouter({
      add: (kind, name) => this.queue.add(`${kind}/${name}`),
      addAllSoon: (kind) => this.enqueueAllSoon(kind),
      forget: (kind, name) => this.statuses.forget(PLURALS[kind], name),
      claimsChanged: () => this.running?.offers.claimsChanged(),
    });
  }

  /**
   * The public origin behind offer endpoints: configured, or followed at run time (a quick
   * tunnel's URL). A change re-reconciles every offer.
   */
  setPublicBaseUrl(url: string): void {
    if (url === this.publicBaseUrl) return;
    this.publicBaseUrl = url;
    if (this.running) this.enqueueAllSoon("serviceOffer");
  }

  synced(): boolean {
    const caches = this.running?.caches;
    return !!caches && Object.values(caches).every((c) => c.synced());
  }

  async start(): Promise<void> {
    const { kc, namespace, log } = this.opts;
    const [serviceOffer, agentIdentity, purchaseRequest] = await Promise.all([
      watchCustomObjects<ServiceOfferObject>(kc, PLURALS.serviceOffer, namespace, log),
      watchCustomObjects<AgentIdentityObject>(kc, PLURALS.agentIdentity, namespace, log),
      watchCustomObjects<PurchaseRequestObject>(kc, PLURALS.purchaseRequest, namespace, log),
    ]);
    const offers = new ServiceOfferReconciler({
      namespace,
      offers: serviceOffer,
      identities: agentIdentity,
      upstreamOverrides: this.opts.upstreamOverrides,
      prober: this.prober,
      gateway: this.gateway,
      statuses: this.statuses,
      probeIntervalMs: this.opts.probeIntervalMs,
      publicBaseUrl: () => this.publicBaseUrl,
      holdDrain: (obj) => holdFinalizer(kc, PLURALS.serviceOffer, obj, DRAIN_FINALIZER),
      releaseDrain: async (obj) => {
        await releaseFinalizer(kc, PLURALS.serviceOffer, obj, DRAIN_FINALIZER);
        log(`serviceoffers/${obj.metadata?.name}: drained, finalizer ${DRAIN_FINALIZER} released`);
      },
    });
    this.running = {
      caches: { serviceOffer, agentIdentity, purchaseRequest },
      offers,
      reconcilers: {
        serviceOffer: offers,
        agentIdentity: new AgentIdentityReconciler({
          identities: agentIdentity,
          offers: serviceOffer,
          statuses: this.statuses,
        }),
        purchaseRequest: new PurchaseRequestReconciler({
          purchases: purchaseRequest,
          statuses: this.statuses,
          probeTimeoutMs: this.opts.probeTimeoutMs,
          probeIntervalMs: this.opts.purchaseProbeIntervalMs,
        }),
      },
    };
    for (const [kind, cache] of Object.entries(this.running.caches) as [
      KindName,
      WatchedCache<k8s.KubernetesObject>,
    ][]) {
      for (const type of ["add", "update", "delete"] as EventType[]) {
        cache.on(type, (obj) => this.router.handle(kind, type, obj));
      }
    }
    for (const obj of serviceOffer.list()) this.router.listed("serviceOffer", obj);
    this.enqueueAll("serviceOffer");
    this.enqueueAll("agentIdentity");
    this.enqueueAll("purchaseRequest");
    log(`controller: watching ServiceOffers, AgentIdentities and PurchaseRequests in ${namespace}`);
  }

  async stop(): Promise<void> {
    await this.queue.shutdown();
    await Promise.all(Object.values(this.running?.caches ?? {}).map((c) => c.stop()));
    this.prober.close();
    this.statuses.close();
  }

  private enqueueAllSoon(kind: KindName): void {
    if (this.enqueueAllPending.size === 0) {
      setImmediate(() => {
        const kinds = [...this.enqueueAllPending];
        this.enqueueAllPending.clear();
        for (const k of kinds) this.enqueueAll(k);
      });
    }
    this.enqueueAllPending.add(kind);
  }

  private enqueueAll(kind: KindName): void {
    for (const obj of this.running?.caches[kind].list() ?? []) {
      if (kind !== "serviceOffer") this.router.listed(kind, obj);
      this.queue.add(`${kind}/${obj.metadata?.name}`);
    }
  }

  private async reconcile(key: string): Promise<void> {
    // Keys are `<kind>/<name>`; Kubernetes names never contain a slash.
    const slash = key.indexOf("/");
    const kind = key.slice(0, slash) as KindName;
    const reconciler = this.running?.reconcilers[kind];
    if (!reconciler) return;
    const name = key.slice(slash + 1);
    const metrics = this.opts.metrics;
    try {
      // Every kind's reconcile is counted and timed here, under the kind's API name; a thrown
      // error counts as an error, a "not converged yet" result as a successful reconcile.
      const result = await (metrics
        ? metrics.observe(KINDS[kind].kind, () => reconciler.reconcile(name))
        : reconciler.reconcile(name));
      if (result.requeue === "backoff") {
        this.queue.add(key, Math.min(this.backoff.next(key), result.capMs));
        return;
      }
      this.backoff.reset(key);
      if (result.requeue === "after") this.queue.add(key, result.ms);
    } catch (err) {
      const delay = this.backoff.next(key);
      this.opts.log(`reconcile ${key} failed: ${errorText(err)}; retrying in ${delay} ms`);
      this.queue.add(key, delay);
    }
  }
}
