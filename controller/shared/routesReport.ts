import type { FacilitatorReason } from "../../api/conditions";

/**
 * What the gateway reports on its internal port (GET /internal/routes): the offers whose routes
 * it holds (valid and conflict-free, whether or not they are Ready yet). The controller turns
 * this into PaymentGateReady.
 */
export const INTERNAL_ROUTES_PATH = "/internal/routes";

export interface HeldRoute {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly generation: number;
  readonly path: string;
  readonly hostname?: string;
  /** Ready=True for this generation, so the route is also served publicly. */
  readonly public: boolean;
  /** Name of the PaymentGate implementation guarding paid routes. */
  readonly paymentGate: string;
  /**
   * Whether the facilitator takes every payment of the offer (its /supported). Absent from an
   * older gateway's report: then it is not known, and not held against the offer.
   */
  readonly facilitator?:
    | { readonly ok: true }
    | { readonly ok: false; readonly reason: FacilitatorReason; readonly message: string };
}

export interface RoutesReport {
  /** False until the gateway's informers finished their first list. */
  readonly synced: boolean;
  readonly paymentGate: string;
  readonly routes: readonly HeldRoute[];
}

export function isRoutesReport(value: unknown): value is RoutesReport {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.synced === "boolean" && Array.isArray(v.routes);
}
