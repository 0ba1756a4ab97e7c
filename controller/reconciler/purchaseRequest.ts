/** PurchaseRequest status: Probed (the seller's 402 matches what we agreed to pay) and Ready. */
import { PurchaseCondition, type PurchaseReasons, type TypedCondition } from "../../api/conditions";
import { PLURALS } from "../../api/contract";
import { purchaseRequestSpecSchema } from "../../api/resources";
import type { PurchaseRequestObject, PurchaseRequestStatus, WatchedCache } from "../shared/kube";
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
    const verdict = parsed.success
      ? await probeSeller(parsed.data, deps.probeTimeoutMs)
      : ({
          ok: false,
          reason: "InvalidSpec",
          message: `the spec does not match the PurchaseRequest schema: ${parsed.error.issues.map((i) => `spec.${i.path.join(".")}: ${i.message}`).join("; ")}`,
        } as const);
    const current = deps.purchases.get(name) ?? obj;
    await deps.statuses.write(
      PLURALS.purchaseRequest,
      current,
      computePurchaseStatus(current, verdict, new Date()),
    );
    return verdict.ok
      ? { requeue: "after", ms: deps.probeIntervalMs }
      : { requeue: "backoff", capMs: deps.probeIntervalMs };
  }
}
