/**
 * Which watch events enqueue which reconciles (controller-runtime's watches and their
 * handlers), kept apart from the informers so the wiring is unit-tested on its own.
 *
 *   ServiceOffer    added, deleted, or its spec changed → every offer (a path claim can move
 *                   to or from any of them) and every identity; any event (our own status
 *                   writes included) → every identity (they summarize readiness)
 *   AgentIdentity   added, deleted or spec changed      → that identity and every offer
 *                   (Registered reads it); a status-only update → nothing
 *   PurchaseRequest added, deleted or spec changed      → that purchase; status-only → nothing
 */
import type * as k8s from "@kubernetes/client-node";
import type { KindName } from "../../api/contract";

export type EventType = "add" | "update" | "delete";

export interface Enqueuer {
  /** Reconcile this object. */
  add(kind: KindName, name: string): void;
  /** Reconcile every object of `kind`, once, at the end of this turn (a burst enqueues once). */
  addAllSoon(kind: KindName): void;
  /** The object is gone: drop what is remembered about it. */
  forget(kind: KindName, name: string): void;
  /** Offers' path claims must be resolved again. */
  claimsChanged(): void;
}

export class EventRouter {
  private readonly generations = new Map<string, number | undefined>();
  /** What each offer contributes to path claims: uid, generation (spec) and deletion. */
  private readonly claimInputs = new Map<string, string>();

  constructor(private readonly to: Enqueuer) {}

  handle(kind: KindName, type: EventType, obj: k8s.KubernetesObject): void {
    const name = obj.metadata?.name ?? "";
    if (type === "delete") this.to.forget(kind, name);
    if (kind === "serviceOffer") {
      // Our own status writes bump resourceVersion, not generation: they change no claim.
      if (this.claimInputsChanged(obj, type)) {
        this.to.claimsChanged();
        this.to.addAllSoon("serviceOffer");
      }
      this.to.addAllSoon("agentIdentity");
      return;
    }
    // Recorded on every event, so the first status write after an add is seen as status-only.
    const specChanged = this.generationChanged(kind, obj);
    if (type === "update" && !specChanged) return;
    if (type === "delete") this.generations.delete(`${kind}/${name}`);
    this.to.add(kind, name);
    if (kind === "agentIdentity") this.to.addAllSoon("serviceOffer");
  }

  /** An object seen in a full listing (enqueued with all of its kind): later updates compare against it. */
  listed(kind: KindName, obj: k8s.KubernetesObject): void {
    if (kind === "serviceOffer") this.claimInputsChanged(obj, "add");
    else this.generations.set(`${kind}/${obj.metadata?.name}`, obj.metadata?.generation);
  }

  private claimInputsChanged(obj: k8s.KubernetesObject, type: EventType): boolean {
    const name = obj.metadata?.name ?? "";
    const before = this.claimInputs.get(name);
    const now =
      type === "delete"
        ? undefined
        : `${obj.metadata?.uid}/${obj.metadata?.generation}/${obj.metadata?.deletionTimestamp ?? ""}`;
    if (before === now) return false;
    if (now === undefined) this.claimInputs.delete(name);
    else this.claimInputs.set(name, now);
    return true;
  }

  private generationChanged(kind: KindName, obj: k8s.KubernetesObject): boolean {
    const key = `${kind}/${obj.metadata?.name}`;
    const before = this.generations.get(key);
    const now = obj.metadata?.generation;
    this.generations.set(key, now);
    return before !== now;
  }
}
