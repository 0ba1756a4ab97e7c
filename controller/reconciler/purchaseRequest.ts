/**
 * PurchaseRequest status: Probed (the seller, found by endpoint or by ERC-8004 agent id, answers
 * a 402 that matches what we agreed to pay), Ready, and the endpoint the buyer pays.
 */
import { PurchaseCondition, type PurchaseReasons, type TypedCondition } from "../../api/conditions";
import { PLURALS } from "../../api/contract";
import { purchaseRequestSpecSchema } from "../../api/resources";
import { resolveAgent, sellerEndpoint } from "../shared/agentResolver";
import type { PurchaseRequestObject, PurchaseRequestStatus, WatchedCache } from "../shared/kube";
import { CONTROLLER_USER_AGENT } from "../shared/outbound";
import { setConditions } from "./conditions";
import { type ProbeVerdict, probeSeller } from "./paymentProbe";
import type { ReconcileResult, Reconciler } from "./reconciler";
import type { StatusUpdater } from "./status";

export function parsePurchaseSpec(obj: PurchaseRequestObject) {
  return purchaseRequestSpecSchema.safeParse(obj.spec);
}

export function computePurchaseStatus(
  obj: PurchaseRequestObject,
  verdict: ProbeVerdict | { ok: false; reason: "InvalidSpec"; message: string },
  now: Date,
  /** Where the seller is (spec.endpoint, or what spec.agent resolved to), when known. */
  endpoint?: string,
): PurchaseRequestStatus {
  const generation = obj.metadata?.generation;
  const conditions: TypedCondition<PurchaseReasons>[] = [
    {
      type: PurchaseCondition.Probed,
      status: verdict.ok ? "True" : "False",
      reason: verdict.reason,
      message: verdict.message,
      observedGeneration: generation,
    },
    {
      type: PurchaseCondition.Ready,
      status: verdict.ok ? "True" : "False",
      reason: verdict.ok ? "Ready" : verdict.reason,
      message: verdict.ok ? "the seller's terms are within this purchase's limits" : verdict.message,
      observedGeneration: generation,
    },
  ];
  const status: PurchaseRequestStatus = {
    ...(obj.status ?? {}),
    observedGeneration: generation,
    conditions: setConditions(obj.status?.conditions ?? [], conditions, now),
  };
  if (verdict.ok) status.probedPrice = verdict.price;
  else delete status.probedPrice;
  if (endpoint) status.endpoint = endpoint;
  else delete status.endpoint;
  return status;
}

/** PurchaseRequest: probes the seller's 402 against the agreed terms, into Probed and Ready. */
export class PurchaseRequestReconciler implements Reconciler {
  constructor(
    private readonly deps: {
      readonly purchases: WatchedCache<PurchaseRequestObject>;
      readonly statuses: StatusUpdater;
      readonly probeTimeoutMs: number;
      /** Re-probe interval of a purchase whose seller checked out (and the cap of its backoff). */
      readonly probeIntervalMs: number;
    },
  ) {}

  async reconcile(name: string): Promise<ReconcileResult> {
    const { deps } = this;
    const obj = deps.purchases.get(name);
    if (!obj || obj.metadata?.deletionTimestamp) return { requeue: "none" };
    const parsed = parsePurchaseSpec(obj);
    let endpoint: string | undefined;
    let verdict: Parameters<typeof computePurchaseStatus>[1];
    if (!parsed.success) {
      verdict = {
        ok: false,
        reason: "InvalidSpec",
        message: `the spec does not match the PurchaseRequest schema: ${parsed.error.issues.map((i) => `spec.${i.path.join(".")}: ${i.message}`).join("; ")}`,
      };
    } else {
      // spec.endpoint as given, or spec.agent resolved (tokenURI → registration → offer endpoint).
      const seller = await sellerEndpoint(parsed.data, (agent, model) =>
        resolveAgent(agent, model, { timeoutMs: deps.probeTimeoutMs, userAgent: CONTROLLER_USER_AGENT }),
      );
      if (seller.ok) {
        endpoint = seller.endpoint;
        verdict = await probeSeller(seller.endpoint, parsed.data, deps.probeTimeoutMs);
      } else verdict = seller;
    }
    const current = deps.purchases.get(name) ?? obj;
    await deps.statuses.write(
      PLURALS.purchaseRequest,
      current,
      computePurchaseStatus(current, verdict, new Date(), endpoint),
    );
    return verdict.ok
      ? { requeue: "after", ms: deps.probeIntervalMs }
      : { requeue: "backoff", capMs: deps.probeIntervalMs };
  }
}
