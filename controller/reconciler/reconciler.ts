/** What a reconciler of one kind tells the manager about when to look at an object again. */
export type ReconcileResult =
  /** Nothing more to do (the object is gone, or nothing is due). */
  | { readonly requeue: "none" }
  /** Converged: look again after `ms` (a periodic health re-check). */
  | { readonly requeue: "after"; readonly ms: number }
  /** Not converged yet: retry with per-object exponential backoff, at most `capMs` apart. */
  | { readonly requeue: "backoff"; readonly capMs: number };

/**
 * One kind's reconciler (kubebuilder style): read the desired state from the informer cache,
 * compare with what the world shows, act, and write status with typed condition reasons.
 * Idempotent: running it twice for an unchanged object writes nothing the second time.
 */
export interface Reconciler {
  reconcile(name: string): Promise<ReconcileResult>;
}
