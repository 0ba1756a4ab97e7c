/** The gateway's view of the cluster: informer caches turned into a memoized route table. */
import { AGENT_IDENTITY_NAME } from "../../api/contract";
import { type AgentIdentitySpec, agentIdentitySpecSchema } from "../../api/resources";
import { type FacilitatorView, type OfferSupport, offerSupport } from "../payments/facilitatorSupport";
import { offerPayments } from "../payments/requirements";
import type { AgentIdentityObject, ServiceOfferObject } from "../shared/kube";
import type { UpstreamOverrides } from "../shared/offers";
import type { HeldRoute, RoutesReport } from "../shared/routesReport";
import { buildRouteTable, type HeldOffer } from "./routing";

export interface OfferSource {
  offers(): readonly ServiceOfferObject[];
  identity(name: string): AgentIdentityObject | undefined;
  synced(): boolean;
  /** Changes whenever any watched object changed. */
  version(): number;
}

/** What the facilitator supports, as facilitatorWatch.ts reads it. */
export interface FacilitatorSource {
  view(): FacilitatorView;
  /** Changes whenever the view may have changed. */
  version(): number;
}

interface Memo {
  readonly version: number;
  readonly supportVersion: number;
  readonly held: HeldOffer[];
  readonly support: ReadonlyMap<HeldOffer, OfferSupport>;
  readonly public: HeldOffer[];
}

const SUPPORTED: OfferSupport = { ok: true };

export class RouteState {
  private memo?: Memo;

  /** Without `facilitator`, every payment counts as supported (tests of routing alone). */
  constructor(
    private readonly source: OfferSource,
    private readonly overrides: UpstreamOverrides,
    private readonly facilitator?: FacilitatorSource,
  ) {}

  private current(): Memo {
    const version = this.source.version();
    const supportVersion = this.facilitator?.version() ?? 0;
    if (this.memo?.version === version && this.memo.supportVersion === supportVersion) return this.memo;
    const held =
      this.memo?.version === version ? this.memo.held : buildRouteTable(this.source.offers(), this.overrides);
    const view = this.facilitator?.view();
    const support = new Map(
      held.map((o) => [o, view ? offerSupport(offerPayments(o.spec), view) : SUPPORTED] as const),
    );
    // A route whose payments the facilitator cannot take is not served: no 402 for a payment
    // no one can settle, even before the controller turns Ready false.
    const publicOffers = held.filter((o) => o.ready && support.get(o)?.ok !== false);
    this.memo = { version, supportVersion, held, support, public: publicOffers };
    return this.memo;
  }

  synced(): boolean {
    return this.source.synced();
  }

  /** Valid, conflict-free offers: the routes this gateway holds. */
  held(): readonly HeldOffer[] {
    return this.current().held;
  }

  /** Held ∧ Ready ∧ payable through the facilitator: routed publicly and listed in every catalog. */
  publicOffers(): readonly HeldOffer[] {
    return this.current().public;
  }

  identity(): AgentIdentitySpec | undefined {
    const obj = this.source.identity(AGENT_IDENTITY_NAME);
    if (!obj) return undefined;
    const parsed = agentIdentitySpecSchema.safeParse(obj.spec);
    return parsed.success ? parsed.data : undefined;
  }

  report(paymentGate: string): RoutesReport {
    const { held, support } = this.current();
    const routes: HeldRoute[] = held.map((o) => ({
      namespace: o.namespace,
      name: o.name,
      uid: o.uid,
      generation: o.generation,
      path: o.spec.path,
      ...(o.spec.hostname ? { hostname: o.spec.hostname } : {}),
      public: o.ready && support.get(o)?.ok !== false,
      paymentGate,
      facilitator: support.get(o) ?? SUPPORTED,
    }));
    return { synced: this.synced(), paymentGate, routes };
  }
}
