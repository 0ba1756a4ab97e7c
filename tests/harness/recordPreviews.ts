/**
 * Records tests/fixtures/previews/*.json from real engine runs: deploys Pulumi.dev.yaml to a
 * fresh local control plane (kubeconfig mode), then previews one change at a time.
 *
 *   scripts/with-tools npx tsx tests/harness/recordPreviews.ts
 *
 * The fixtures are git-tracked: the script fails if a secret would end up in one, and drops the
 * states of unchanged resources (compactDigest) to keep them small.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { at } from "./assertions";
import { startControlPlane } from "./controlPlane";
import { RUN_DIR } from "./env";
import { compactDigest, previewJson } from "./previews";
import { programStack, REPO_ROOT } from "./project";

const OUT = path.join(REPO_ROOT, "tests/fixtures/previews");
export const NEW_PAY_TO = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

type Offer = {
  name: string;
  payment: { network: string; payTo: string; price: Record<string, string> };
  payments?: { network: string; payTo: string; price: Record<string, string> }[];
};

/** Each scenario edits the dev stack's offers; the preview shows exactly that edit. */
const SCENARIOS: Record<string, (offers: Offer[]) => Offer[]> = {
  "add-offer": (offers) => [
    ...offers,
    {
      name: "translate",
      upstream: { url: "http://translate.apps.svc:8080" },
      payment: {
        network: "base-sepolia",
        payTo: at(offers, 0).payment.payTo,
        price: { perRequest: "0.002" },
      },
    } as Offer,
  ],
  "price-change": (offers) =>
    offers.map((o) =>
      o.name === "weather" ? { ...o, payment: { ...o.payment, price: { perRequest: "0.002" } } } : o,
    ),
  "payto-change": (offers) =>
    offers.map((o) => (o.name === "weather" ? { ...o, payment: { ...o.payment, payTo: NEW_PAY_TO } } : o)),
  "add-chain": (offers) =>
    offers.map((o) =>
      o.name === "llama"
        ? { ...o, payments: [{ network: "base", payTo: o.payment.payTo, price: { perRequest: "0.001" } }] }
        : o,
    ),
  "remove-offer": (offers) => offers.filter((o) => o.name !== "weather"),
};

async function record(stack: Stack, secrets: string[]): Promise<void> {
  const original = (await stack.getConfig("obol-stack:offers")).value;
  fs.mkdirSync(OUT, { recursive: true });
  for (const [name, edit] of Object.entries(SCENARIOS)) {
    await stack.setConfig("obol-stack:offers", { value: JSON.stringify(edit(JSON.parse(original))) });
    const preview = previewJson(stack, { policyPack: path.join(REPO_ROOT, "policy") });
    const json = `${JSON.stringify(compactDigest(preview.digest), null, 2)}\n`;
    for (const secret of secrets) assert.ok(!json.includes(secret), `${name}: a secret is in the preview`);
    assert.ok(!json.includes(REPO_ROOT), `${name}: a local path is in the preview`);
    fs.writeFileSync(path.join(OUT, `${name}.json`), json);
    if (preview.policyEventLines.length > 0) {
      fs.writeFileSync(path.join(OUT, `${name}.events.jsonl`), `${preview.policyEventLines.join("\n")}\n`);
    }
    console.log(
      `${name}: ${JSON.stringify(preview.digest.changeSummary)}, ${preview.violations.length} violations`,
    );
  }
  await stack.setConfig("obol-stack:offers", { value: original });
}

async function main(): Promise<void> {
  const dir = path.join(RUN_DIR, "record-previews");
  fs.rmSync(dir, { recursive: true, force: true });
  const cluster = await startControlPlane({ dir: path.join(dir, "cluster") });
  let stack: Stack | undefined;
  try {
    stack = await programStack({
      dir,
      stackName: "dev",
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
        "obol-stack:namespace": { value: "obol" },
      },
    });
    const up = await stack.up();
    assert.equal(up.summary.result, "succeeded");
    await record(stack, [cluster.token, cluster.kubeconfig]);
  } finally {
    await stack?.destroy().catch(() => undefined);
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
