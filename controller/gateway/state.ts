/** The gateway's view of the cluster: informer caches turned into a memoized route table. */
import { AGENT_IDENTITY_NAME } from "../../api/contract";
import { type AgentIdentitySpec, agentIdentitySpecSchema } from "../../api/resources";
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

export class RouteState {
  private memo?: { version: number; held: HeldOffer[] };

  constructor(
    private readonly source: OfferSource,
    private readonly overrides: UpstreamOverrides,
  ) {}

  synced(): boolean {
    return this.source.synced();
  }

  /** Valid, conflict-free offers: the routes this gateway holds. */
  held(): readonly HeldOffer[] {
    const version = this.source.version();
    if (!this.memo || this.memo.version !== version) {
      this.memo = { version, held: buildRouteTable(this.source.offers(), this.overrides) };
    }
    return this.memo.held;
  }

  /** Held ∧ Ready: routed publicly and listed in every catalog. */
  publicOffers(): readonly HeldOffer[] {
    return this.held().filter((o) => o.ready);
  }

  identity(): AgentIdentitySpec | undefined {
    const obj = this.source.identity(AGENT_IDENTITY_NAME);
    if (!obj) return undefined;
    const parsed = agentIdentitySpecSchema.safeParse(obj.spec);
    return parsed.success ? parsed.data : undefined;
  }

  report(paymentGate: string): RoutesReport {
    const routes: HeldRoute[] = this.held().map((o) => ({
      namespace: o.namespace,
      name: o.name,
      uid: o.uid,
      generation: o.generation,
      path: o.spec.path,
      ...(o.spec.hostname ? { hostname: o.spec.hostname } : {}),
      public: o.ready,
      paymentGate,
    }));
    return { synced: this.synced(), paymentGate, routes };
  }
}
