/** Kubernetes-style conditions: set one, keep lastTransitionTime unless the status flips. */
import type { Condition } from "../../api/resources";

export type ConditionInput = Omit<Condition, "lastTransitionTime">;

/** Returns the list with `next` set; lastTransitionTime changes only when the status changes. */
export function setCondition(conditions: readonly Condition[], next: ConditionInput, now: Date): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  const merged: Condition = { ...next, lastTransitionTime };
  if (merged.message === undefined) delete merged.message;
  const out = conditions.filter((c) => c.type !== next.type);
  out.push(merged);
  return out;
}

/** Sets several conditions in order, keeping a stable order by type as given. */
export function setConditions(
  conditions: readonly Condition[],
  next: readonly ConditionInput[],
  now: Date,
): Condition[] {
  let out = [...conditions];
  for (const c of next) out = setCondition(out, c, now);
  const order = next.map((c) => c.type);
  return out.sort((a, b) => rank(order, a.type) - rank(order, b.type));
}

function rank(order: readonly string[], type: string): number {
  const i = order.indexOf(type);
  return i < 0 ? order.length : i;
}

/** Deep equality of two JSON-like values (status objects), ignoring key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => jsonEqual(ra[k], rb[k]));
}
