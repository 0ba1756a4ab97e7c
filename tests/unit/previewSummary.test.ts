import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { COMMENT_MARKER, renderSummary } from "../../scripts/previewSummary/markdown";
import {
  AGENT_REGISTRATION_TYPE,
  type PreviewDigest,
  type PreviewSummary,
  policyViolationsFromEventLog,
  SERVICE_OFFER_TYPE,
  summarizePreview,
} from "../../scripts/previewSummary/model";
import { first, only } from "../harness/assertions";

const FIXTURES = path.resolve(__dirname, "../fixtures/previews");
const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NEW_PAY_TO = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/** A saved `pulumi preview --json` of a real run (tests/harness/recordPreviews.ts), summarized. */
function fixture(name: string): { summary: PreviewSummary; markdown: string } {
  const digest = JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), "utf8")) as PreviewDigest;
  const events = path.join(FIXTURES, `${name}.events.jsonl`);
  const violations = fs.existsSync(events)
    ? policyViolationsFromEventLog(fs.readFileSync(events, "utf8"))
    : [];
  const summary = summarizePreview(digest, violations);
  return { summary, markdown: renderSummary(summary) };
}

describe("preview summary", () => {
  describe("on saved previews of real engine runs", () => {
    it("the fixtures hold no secret", () => {
      for (const file of fs.readdirSync(FIXTURES)) {
        const text = fs.readFileSync(path.join(FIXTURES, file), "utf8");
        assert.ok(!/BEGIN [A-Z ]*PRIVATE KEY|client-key-data|token: |"sk-/.test(text), file);
        assert.match(
          text,
          /"obol-stack:kubeconfig": "\[secret\]"|policyEvent/,
          `${file}: the kubeconfig is masked`,
        );
      }
    });

    it("an added offer: its full terms, nothing else", () => {
      const { summary, markdown } = fixture("add-offer");
      assert.equal(summary.stack, "dev");
      assert.deepEqual(summary.offers, [
        {
          name: "translate",
          kind: "added",
          terms: [{ network: "eip155:84532", payTo: PAY_TO, prices: { perRequest: "0.002" } }],
          priceChanges: [],
          payToChanges: [],
          networksAdded: [],
          networksRemoved: [],
          otherFields: [],
          highRisk: false,
        },
      ]);
      assert.deepEqual(summary.platform, [], "refreshes and components are not platform changes");
      assert.ok(markdown.startsWith(COMMENT_MARKER));
      assert.match(markdown, /offers: 1 added, 0 removed, 0 changed · 0 platform changes · policy: ✅/);
      assert.match(markdown, /\| `translate` \| added \| 0\.002 per request on `eip155:84532` to `0x7099/);
    });

    it("a price change: old → new, not high risk", () => {
      const { summary, markdown } = fixture("price-change");
      const weather = only(summary.offers);
      assert.equal(weather.kind, "changed");
      assert.deepEqual(weather.priceChanges, [
        { network: "eip155:84532", unit: "perRequest", from: "0.0005", to: "0.002" },
      ]);
      assert.equal(weather.highRisk, false);
      assert.match(markdown, /price per request on `eip155:84532`: 0\.0005 → \*\*0\.002\*\*/);
      assert.ok(!markdown.includes("high risk"));
    });

    it("a payTo change: flagged high risk, with both full addresses", () => {
      const { summary, markdown } = fixture("payto-change");
      const weather = first(summary.offers);
      assert.deepEqual(weather.payToChanges, [{ network: "eip155:84532", from: PAY_TO, to: NEW_PAY_TO }]);
      assert.equal(weather.highRisk, true);
      assert.match(markdown, /⚠️ \*\*1 high-risk change\*\*/);
      assert.ok(
        markdown.includes(`**high risk** payTo on \`eip155:84532\`: \`${PAY_TO}\` → \`${NEW_PAY_TO}\``),
      );
    });

    it("an added chain: flagged high risk, and the mainnet policy violation listed", () => {
      const { summary, markdown } = fixture("add-chain");
      const llama = first(summary.offers);
      assert.equal(llama.name, "llama");
      assert.deepEqual(llama.networksAdded, ["eip155:8453"]);
      assert.equal(llama.highRisk, true);
      assert.ok(
        markdown.includes(
          `**high risk** network added: 0.001 per request on \`eip155:8453\` to \`${PAY_TO}\``,
        ),
      );
      assert.ok(summary.policy.some((p) => p.policyName === "offer-mainnet-opt-in"));
      assert.match(markdown, /policy: ❌ 1 violation/);
      assert.match(
        markdown,
        /- ❌ `offer-mainnet-opt-in` on `llama`: Offers on a mainnet .* ServiceOffer "llama": spec\.payments\[0\]\.network/,
      );
    });

    it("a removed offer", () => {
      const { summary, markdown } = fixture("remove-offer");
      assert.deepEqual(
        summary.offers.map((o) => [o.name, o.kind]),
        [["weather", "removed"]],
      );
      assert.match(markdown, /\| `weather` \| removed \| 0\.0005 per request/);
    });
  });

  describe("on synthetic steps", () => {
    const urn = (type: string, name: string) => `urn:pulumi:prod::obol-stack::${type}::${name}`;
    const registration = (agentURI: string) => ({
      urn: urn(AGENT_REGISTRATION_TYPE, "base"),
      type: AGENT_REGISTRATION_TYPE,
      custom: true,
      inputs: { network: "eip155:8453", agentURI },
    });

    it("names registration mints, URI updates and re-mints", () => {
      const digest: PreviewDigest = {
        steps: [
          {
            op: "create",
            urn: urn(AGENT_REGISTRATION_TYPE, "base"),
            newState: registration("https://a/x.json"),
          },
          {
            op: "update",
            urn: urn(AGENT_REGISTRATION_TYPE, "base2"),
            oldState: registration("https://a/x.json"),
            newState: registration("https://b/x.json"),
          },
          {
            op: "create-replacement",
            urn: urn(AGENT_REGISTRATION_TYPE, "base3"),
            oldState: registration("https://a/x.json"),
            newState: registration("https://a/x.json"),
          },
          {
            op: "replace",
            urn: urn(AGENT_REGISTRATION_TYPE, "base3"),
            oldState: registration("https://a/x.json"),
            newState: registration("https://a/x.json"),
          },
        ],
      };
      const summary = summarizePreview(digest);
      assert.deepEqual(
        summary.registrations.map((r) => [r.name, r.kind]),
        [
          ["base", "mint"],
          ["base2", "uri-update"],
          ["base3", "re-mint"],
        ],
      );
      const md = renderSummary(summary);
      assert.match(
        md,
        /`base`: \*\*mint\*\* a new agent NFT on `eip155:8453` with URI `https:\/\/a\/x\.json`/,
      );
      assert.match(
        md,
        /\*\*URI update\*\* on `eip155:8453`: `https:\/\/a\/x\.json` → `https:\/\/b\/x\.json`/,
      );
      assert.match(md, /⚠️ \*\*1 high-risk change\*\*/);
      assert.match(md, /3 registration changes/);
    });

    it("counts platform changes by operation and lists them folded", () => {
      const deployment = "kubernetes:apps/v1:Deployment";
      const state = (name: string) => ({ urn: urn(deployment, name), type: deployment, custom: true });
      const summary = summarizePreview({
        steps: [
          { op: "update", urn: urn(deployment, "a"), oldState: state("a"), newState: state("a") },
          { op: "update", urn: urn(deployment, "b"), oldState: state("b"), newState: state("b") },
          { op: "create", urn: urn(deployment, "c"), newState: state("c") },
          { op: "same", urn: urn(deployment, "d"), newState: state("d") },
        ],
      });
      const md = renderSummary(summary);
      assert.match(md, /3 platform changes/);
      assert.match(md, /### Platform: 2 to update, 1 to create/);
      assert.match(
        md,
        /<details><summary>resources<\/summary>[\s\S]*- create `kubernetes:apps\/v1:Deployment` `c`/,
      );
    });

    it("shows a price unknown until apply, other changed fields, and preview errors", () => {
      const offer = (perRequest: string) => ({
        urn: urn(SERVICE_OFFER_TYPE, "o"),
        type: SERVICE_OFFER_TYPE,
        custom: true,
        inputs: {
          metadata: { name: "o" },
          spec: { payment: { network: "eip155:84532", payTo: PAY_TO, price: { perRequest } }, path: "/x" },
        },
      });
      const summary = summarizePreview({
        steps: [
          {
            op: "update",
            urn: urn(SERVICE_OFFER_TYPE, "o"),
            oldState: offer("1"),
            newState: offer("04da6b54-80e4-46f7-96ec-b56ff0331ba9"),
            detailedDiff: {
              "spec.payment.price.perRequest": { kind: "update", inputDiff: true },
              "spec.path": { kind: "update", inputDiff: true },
            },
          },
        ],
        diagnostics: [{ severity: "error", message: "error: boom\n" }],
      });
      const md = renderSummary(summary);
      assert.match(md, /1 → \*\*\(known after apply\)\*\*<br>also: `spec\.path`/);
      assert.match(md, /### ❌ Preview errors\n\n- error: boom/);
    });

    it("reads policy violations from an engine event log and escapes table cells", () => {
      const log = [
        JSON.stringify({ sequence: 1, timestamp: 1, preludeEvent: { config: {} } }),
        JSON.stringify({
          sequence: 2,
          timestamp: 2,
          policyEvent: {
            policyName: "workload-resources",
            policyPackName: "obol-stack",
            enforcementLevel: "advisory",
            message: "a | b",
            resourceUrn: urn("kubernetes:apps/v1:Deployment", "x"),
          },
        }),
        "",
      ].join("\n");
      const violations = policyViolationsFromEventLog(log);
      assert.equal(violations.length, 1);
      const md = renderSummary(summarizePreview({ steps: [] }, violations));
      assert.match(md, /policy: ⚠️ 1 violation/);
      assert.match(md, /- ⚠️ `workload-resources` on `x`: a \\\| b/);
    });
  });
});
