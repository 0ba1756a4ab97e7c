/** PurchaseRequest status: Probed (the seller's 402 matches what we agreed to pay) and Ready. */
import { purchaseRequestSpecSchema } from "../../api/resources";
import type { PurchaseRequestObject, PurchaseRequestStatus } from "../shared/kube";
import { setConditions } from "./conditions";
import type { ProbeVerdict } from "./paymentProbe";

export function parsePurchaseSpec(obj: PurchaseRequestObject) {
  return purchaseRequestSpecSchema.safeParse(obj.spec);
}

export function computePurchaseStatus(
  obj: PurchaseRequestObject,
  verdict: ProbeVerdict | { ok: false; reason: "InvalidSpec"; message: string },
  now: Date,
): PurchaseRequestStatus {
  const generation = obj.metadata?.generation;
  const status: PurchaseRequestStatus = {
    ...(obj.status ?? {}),
    observedGeneration: generation,
    conditions: setConditions(
      obj.status?.conditions ?? [],
      [
        {
          type: "Probed",
          status: verdict.ok ? "True" : "False",
          reason: verdict.reason,
          message: verdict.message,
          observedGeneration: generation,
        },
        {
          type: "Ready",
          status: verdict.ok ? "True" : "False",
          reason: verdict.ok ? "Ready" : verdict.reason,
          message: verdict.ok ? "the seller's terms are within this purchase's limits" : verdict.message,
          observedGeneration: generation,
        },
      ],
      now,
    ),
  };
  if (verdict.ok) status.probedPrice = verdict.price;
  else delete status.probedPrice;
  return status;
}
