/**
 * What a reviewer needs from a `pulumi preview --json` digest (and, for policy violations, the
 * engine event log of the same run): offers added, removed and changed, with prices, payees
 * and chains compared; ERC-8004 registration changes; platform changes counted. Pure: no I/O.
 */

export const SERVICE_OFFER_TYPE = "kubernetes:obol.org/v1alpha1:ServiceOffer";
export const AGENT_REGISTRATION_TYPE = "pulumi-nodejs:dynamic/obol:AgentRegistration";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

// ---- input shapes (the parts of Pulumi's JSON we read) ------------------------------------

export interface ResourceState {
  urn: string;
  type: string;
  custom?: boolean;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

export interface PreviewStep {
  op: string;
  urn: string;
  oldState?: ResourceState;
  newState?: ResourceState;
  diffReasons?: string[];
  replaceReasons?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff: boolean }> | null;
}

export interface PreviewDigest {
  config?: Record<string, string>;
  steps?: PreviewStep[];
  diagnostics?: { urn?: string; message: string; severity: string }[];
  changeSummary?: Record<string, number>;
}

/** A policy violation, as the engine event log (`--event-log`) records it. */
export interface PolicyViolation {
  policyName: string;
  policyPackName: string;
  enforcementLevel: string;
  message: string;
  resourceUrn?: string;
}

// ---- output model --------------------------------------------------------------------------

export interface PaymentTerms {
  network: string;
  payTo: string;
  /** e.g. `perRequest 0.001`. */
  prices: Record<string, string>;
}

export interface OfferChange {
  name: string;
  kind: "added" | "removed" | "changed" | "replaced";
  /** The terms after the change (before, for a removal). */
  terms: PaymentTerms[];
  priceChanges: { network: string; unit: string; from?: string | undefined; to?: string | undefined }[];
  payToChanges: { network: string; from: string; to: string }[];
  networksAdded: string[];
  networksRemoved: string[];
  /** Other changed fields, e.g. `spec.path`. */
  otherFields: string[];
  highRisk: boolean;
}

export interface RegistrationChange {
  name: string;
  kind: "mint" | "uri-update" | "re-mint" | "removed" | "changed";
  network?: string | undefined;
  fromUri?: string | undefined;
  toUri?: string | undefined;
}

export interface PlatformChange {
  op: string;
  type: string;
  name: string;
}

export interface PreviewSummary {
  stack?: string | undefined;
  offers: OfferChange[];
  registrations: RegistrationChange[];
  platform: PlatformChange[];
  policy: PolicyViolation[];
  errors: string[];
}

// ---- analysis ------------------------------------------------------------------------------

const QUIET_OPS = new Set([
  "same",
  "read",
  "refresh",
  "discard",
  "discard-replaced",
  "remove-pending-replace",
]);

export function urnName(urn: string): string {
  return urn.split("::").pop() ?? urn;
}

function stackOf(urn: string): string | undefined {
  return /^urn:pulumi:([^:]+)::/.exec(urn)?.[1];
}

function shown(value: unknown): string {
  if (value === UNKNOWN) return "(known after apply)";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** The payment terms of a ServiceOffer state: spec.payment then spec.payments[]. */
export function offerTerms(state: ResourceState | undefined): PaymentTerms[] {
  const spec = record(record(state?.inputs)?.spec);
  if (!spec) return [];
  const payments = [spec.payment, ...(Array.isArray(spec.payments) ? spec.payments : [])];
  return payments
    .map(record)
    .filter((p): p is Record<string, unknown> => p !== undefined)
    .map((p) => ({
      network: shown(p.network),
      payTo: shown(p.payTo),
      prices: Object.fromEntries(Object.entries(record(p.price) ?? {}).map(([k, v]) => [k, shown(v)])),
    }));
}

function offerName(step: PreviewStep): string {
  const state = step.newState ?? step.oldState;
  const name = record(record(state?.inputs)?.metadata)?.name;
  return typeof name === "string" && name !== UNKNOWN ? name : urnName(step.urn);
}

function offerChange(step: PreviewStep): OfferChange {
  const before = offerTerms(step.oldState);
  const after = offerTerms(step.newState);
  const kind: OfferChange["kind"] =
    step.op === "create"
      ? "added"
      : step.op === "delete"
        ? "removed"
        : step.op.includes("replace")
          ? "replaced"
          : "changed";
  const change: OfferChange = {
    name: offerName(step),
    kind,
    terms: kind === "removed" ? before : after,
    priceChanges: [],
    payToChanges: [],
    networksAdded: [],
    networksRemoved: [],
    otherFields: [],
    highRisk: false,
  };
  if (kind === "added" || kind === "removed") return change;

  const beforeBy = new Map(before.map((t) => [t.network, t]));
  const afterBy = new Map(after.map((t) => [t.network, t]));
  change.networksAdded = after.filter((t) => !beforeBy.has(t.network)).map((t) => t.network);
  change.networksRemoved = before.filter((t) => !afterBy.has(t.network)).map((t) => t.network);
  for (const t of after) {
    const old = beforeBy.get(t.network);
    if (!old) continue;
    if (old.payTo !== t.payTo) change.payToChanges.push({ network: t.network, from: old.payTo, to: t.payTo });
    for (const unit of new Set([...Object.keys(old.prices), ...Object.keys(t.prices)])) {
      if (old.prices[unit] !== t.prices[unit]) {
        change.priceChanges.push({ network: t.network, unit, from: old.prices[unit], to: t.prices[unit] });
      }
    }
  }
  const paymentField = /^spec\.payments?(\[\d+\])?(\.|$)/;
  change.otherFields = Object.keys(step.detailedDiff ?? {})
    .filter((k) => !paymentField.test(k))
    .sort();
  change.highRisk =
    change.payToChanges.length > 0 || change.networksAdded.length > 0 || change.networksRemoved.length > 0;
  return change;
}

function registrationChange(step: PreviewStep): RegistrationChange {
  const input = (s?: ResourceState, key = "agentURI") => {
    const v = record(s?.inputs)?.[key];
    return v === undefined ? undefined : shown(v);
  };
  const base = {
    name: urnName(step.urn),
    network: input(step.newState ?? step.oldState, "network"),
    fromUri: input(step.oldState),
    toUri: input(step.newState),
  };
  if (step.op === "create") return { ...base, kind: "mint" };
  if (step.op === "delete") return { ...base, kind: "removed" };
  if (step.op.includes("replace")) return { ...base, kind: "re-mint" };
  return { ...base, kind: base.fromUri !== base.toUri ? "uri-update" : "changed" };
}

/** Policy violations recorded in an engine event log (one JSON event per line). */
export function policyViolationsFromEventLog(text: string): PolicyViolation[] {
  const violations: PolicyViolation[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    const event = JSON.parse(line) as { policyEvent?: PolicyViolation };
    if (event.policyEvent) violations.push(event.policyEvent);
  }
  return violations;
}

export function summarizePreview(digest: PreviewDigest, policy: PolicyViolation[] = []): PreviewSummary {
  const steps = digest.steps ?? [];
  const summary: PreviewSummary = {
    stack: steps.map((s) => stackOf(s.urn)).find((s) => s !== undefined),
    offers: [],
    registrations: [],
    platform: [],
    policy,
    errors: (digest.diagnostics ?? []).filter((d) => d.severity === "error").map((d) => d.message.trim()),
  };
  // A replacement shows as several steps (create-replacement, replace, delete-replaced): keep one.
  const seen = new Set<string>();
  for (const step of steps) {
    if (QUIET_OPS.has(step.op)) continue;
    const state = step.newState ?? step.oldState;
    const type = state?.type ?? "";
    if (type === "pulumi:pulumi:Stack" || state?.custom === false) continue;
    const key = `${step.urn}|${step.op.includes("replace") ? "replace" : step.op}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (type === SERVICE_OFFER_TYPE) summary.offers.push(offerChange(step));
    else if (type === AGENT_REGISTRATION_TYPE) summary.registrations.push(registrationChange(step));
    else
      summary.platform.push({
        op: step.op.includes("replace") ? "replace" : step.op,
        type,
        name: urnName(step.urn),
      });
  }
  summary.offers.sort((a, b) => a.name.localeCompare(b.name));
  return summary;
}
