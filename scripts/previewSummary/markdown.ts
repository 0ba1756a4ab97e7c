/** Renders a PreviewSummary as a Markdown PR comment a reviewer can read in ten seconds. */
import type { OfferChange, PaymentTerms, PreviewSummary, RegistrationChange } from "./model";

/** Marks the comment so a workflow can find and update it instead of posting another. */
export const COMMENT_MARKER = "<!-- obol-stack-preview-summary -->";

const UNITS: Record<string, string> = { perRequest: "per request", perMTok: "per 1M tokens" };

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function terms(t: PaymentTerms): string {
  const prices = Object.entries(t.prices)
    .map(([unit, value]) => `${value} ${UNITS[unit] ?? unit}`)
    .join(", ");
  return `${prices} on \`${t.network}\` to \`${t.payTo}\``;
}

function offerDetails(o: OfferChange): string {
  if (o.kind === "added" || o.kind === "removed") return o.terms.map(terms).join("<br>");
  const parts: string[] = [];
  for (const p of o.priceChanges) {
    parts.push(`price ${UNITS[p.unit] ?? p.unit} on \`${p.network}\`: ${p.from ?? "—"} → **${p.to ?? "—"}**`);
  }
  for (const p of o.payToChanges) {
    parts.push(`**high risk** payTo on \`${p.network}\`: \`${p.from}\` → \`${p.to}\``);
  }
  for (const n of o.networksAdded) {
    const added = o.terms.find((t) => t.network === n);
    parts.push(`**high risk** network added: ${added ? terms(added) : `\`${n}\``}`);
  }
  for (const n of o.networksRemoved) parts.push(`**high risk** network removed: \`${n}\``);
  if (o.otherFields.length > 0) parts.push(`also: ${o.otherFields.map((f) => `\`${f}\``).join(", ")}`);
  if (o.kind === "replaced") parts.push("replaced (deleted and recreated)");
  return parts.length > 0 ? parts.join("<br>") : "metadata only";
}

function registrationDetails(r: RegistrationChange): string {
  const on = r.network ? ` on \`${r.network}\`` : "";
  switch (r.kind) {
    case "mint":
      return `**mint** a new agent NFT${on} with URI \`${r.toUri ?? "?"}\``;
    case "uri-update":
      return `**URI update**${on}: \`${r.fromUri ?? "?"}\` → \`${r.toUri ?? "?"}\``;
    case "re-mint":
      return `**high risk** re-mint${on}: a new agentId replaces the current one`;
    case "removed":
      return `removed from the stack${on} (the NFT stays on chain)`;
    case "changed":
      return `changed${on}`;
  }
}

export function renderSummary(s: PreviewSummary): string {
  const count = (kind: OfferChange["kind"]) => s.offers.filter((o) => o.kind === kind).length;
  const highRisk =
    s.offers.filter((o) => o.highRisk).length + s.registrations.filter((r) => r.kind === "re-mint").length;
  const mandatory = s.policy.filter((p) => p.enforcementLevel === "mandatory");
  const headline = [
    `offers: ${count("added")} added, ${count("removed")} removed, ${count("changed") + count("replaced")} changed`,
    ...(highRisk > 0 ? [`⚠️ **${plural(highRisk, "high-risk change")}**`] : []),
    ...(s.registrations.length > 0 ? [plural(s.registrations.length, "registration change")] : []),
    plural(s.platform.length, "platform change"),
    s.policy.length === 0
      ? "policy: ✅"
      : `policy: ${mandatory.length > 0 ? "❌" : "⚠️"} ${plural(s.policy.length, "violation")}`,
  ];
  const out: string[] = [
    COMMENT_MARKER,
    `## Preview${s.stack ? ` of \`${s.stack}\`` : ""}`,
    "",
    headline.join(" · "),
  ];

  if (s.errors.length > 0) {
    out.push("", "### ❌ Preview errors", "", ...s.errors.map((e) => `- ${cell(e)}`));
  }
  if (s.offers.length > 0) {
    out.push("", "### Offers", "", "| offer | change | details |", "| --- | --- | --- |");
    for (const o of s.offers) {
      out.push(`| \`${o.name}\`${o.highRisk ? " ⚠️" : ""} | ${o.kind} | ${cell(offerDetails(o))} |`);
    }
  }
  if (s.registrations.length > 0) {
    out.push("", "### ERC-8004 registrations", "");
    for (const r of s.registrations) out.push(`- \`${r.name}\`: ${registrationDetails(r)}`);
  }
  if (s.policy.length > 0) {
    out.push("", "### Policy violations", "");
    for (const p of [...mandatory, ...s.policy.filter((v) => v.enforcementLevel !== "mandatory")]) {
      const icon = p.enforcementLevel === "mandatory" ? "❌" : "⚠️";
      const where = p.resourceUrn ? ` on \`${p.resourceUrn.split("::").pop()}\`` : "";
      out.push(`- ${icon} \`${p.policyName}\`${where}: ${cell(p.message.trim())}`);
    }
  }
  if (s.platform.length > 0) {
    const byOp = new Map<string, number>();
    for (const p of s.platform) byOp.set(p.op, (byOp.get(p.op) ?? 0) + 1);
    out.push(
      "",
      `### Platform: ${[...byOp].map(([op, n]) => `${n} to ${op}`).join(", ")}`,
      "",
      "<details><summary>resources</summary>",
      "",
      ...s.platform.map((p) => `- ${p.op} \`${p.type}\` \`${p.name}\``),
      "",
      "</details>",
    );
  }
  return `${out.join("\n")}\n`;
}
