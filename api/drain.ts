/**
 * When an offer stops taking payments and when its route goes away (docs/adr/0006-offer-drain.md).
 * The program writes `spec.endsAt` / `spec.drainSeconds`; the controller puts DRAIN_FINALIZER on
 * every ServiceOffer it reconciles; the gateway refuses new payments from the end on and drops
 * the route `drainSeconds` later; the controller releases the finalizer of a deleted offer then.
 * Deleting an offer ends it at its deletionTimestamp (or at `endsAt`, if earlier). Pure: both
 * sides compute the same instants from the object alone.
 */
import type { ServiceOfferSpec } from "./resources";

/** Put on every ServiceOffer by the controller: the object outlives its deletion by the drain. */
export const DRAIN_FINALIZER = "obol.org/drain";

/** Seconds an ended offer keeps its route (refusing new payments) before it goes away. */
export const DEFAULT_DRAIN_SECONDS = 60;

export interface OfferEnd {
  /** When new payments stop (ms since the epoch); undefined: the offer does not end. */
  readonly endsAt?: number;
  /** When the route goes away (ms since the epoch): endsAt + drainSeconds. */
  readonly goneAt?: number;
}

export type DrainPhase = "open" | "ended" | "gone";

/** The end of an offer from its spec and, when it is being deleted, its deletionTimestamp. */
export function offerEnd(
  spec: Pick<ServiceOfferSpec, "endsAt" | "drainSeconds">,
  deletionTimestamp?: Date | string,
): OfferEnd {
  const declared = spec.endsAt === undefined ? undefined : Date.parse(spec.endsAt);
  const deleted = deletionTimestamp === undefined ? undefined : new Date(deletionTimestamp).getTime();
  const candidates = [declared, deleted].filter((t): t is number => t !== undefined && Number.isFinite(t));
  if (candidates.length === 0) return {};
  const endsAt = Math.min(...candidates);
  return { endsAt, goneAt: endsAt + (spec.drainSeconds ?? DEFAULT_DRAIN_SECONDS) * 1000 };
}

export function drainPhase(end: OfferEnd, nowMs: number): DrainPhase {
  if (end.goneAt !== undefined && nowMs >= end.goneAt) return "gone";
  if (end.endsAt !== undefined && nowMs >= end.endsAt) return "ended";
  return "open";
}
