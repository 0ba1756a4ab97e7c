/**
 * A Markdown summary of a preview for pull-request review (`npm run preview:summary`).
 *
 *   npm run preview:summary -- --stack dev --policy-pack policy [--output summary.md]
 *       runs `pulumi preview --json --event-log <tmp>` and summarizes it;
 *   npm run preview:summary -- --input preview.json [--events events.jsonl]
 *       summarizes a saved `pulumi preview --json` (policy violations come from an event log).
 *
 * Exits with the preview's own status (after writing the summary), so CI can post the summary
 * and still fail on errors or mandatory policy violations.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { renderSummary } from "./previewSummary/markdown";
import {
  type PolicyViolation,
  type PreviewDigest,
  policyViolationsFromEventLog,
  summarizePreview,
} from "./previewSummary/model";

interface Preview {
  digest: PreviewDigest;
  violations: PolicyViolation[];
  status: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    input: { type: "string" },
    events: { type: "string" },
    stack: { type: "string" },
    cwd: { type: "string" },
    "policy-pack": { type: "string", multiple: true },
    "policy-pack-config": { type: "string", multiple: true },
    output: { type: "string" },
  },
});

function readSaved(input: string, events?: string): Preview {
  return {
    digest: JSON.parse(fs.readFileSync(input, "utf8")) as PreviewDigest,
    violations: events ? policyViolationsFromEventLog(fs.readFileSync(events, "utf8")) : [],
    status: 0,
  };
}

function runPreview(): Preview {
  const eventLog = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "preview-summary-")), "events.jsonl");
  const args = ["preview", "--json", "--non-interactive", "--event-log", eventLog];
  if (values.stack) args.push("--stack", values.stack);
  if (values.cwd) args.push("--cwd", values.cwd);
  for (const pack of values["policy-pack"] ?? []) args.push("--policy-pack", path.resolve(pack));
  for (const cfg of values["policy-pack-config"] ?? []) args.push("--policy-pack-config", path.resolve(cfg));
  const run = spawnSync("pulumi", args, {
    encoding: "utf8",
    maxBuffer: 256 << 20,
    stdio: ["ignore", "pipe", "inherit"],
    // --event-log (where policy violations are recorded) exists only with debug commands on.
    env: { ...process.env, PULUMI_DEBUG_COMMANDS: "true" },
  });
  if (run.error) throw new Error(`could not run pulumi: ${run.error.message}`);
  let digest: PreviewDigest;
  try {
    digest = JSON.parse(run.stdout) as PreviewDigest;
  } catch {
    throw new Error(
      `pulumi preview --json printed no JSON (exit ${run.status}):\n${run.stdout.slice(-4000)}`,
    );
  }
  const violations = fs.existsSync(eventLog)
    ? policyViolationsFromEventLog(fs.readFileSync(eventLog, "utf8"))
    : [];
  return { digest, violations, status: run.status ?? 1 };
}

function main(): number {
  const input = values.input ?? positionals[0];
  const preview = input ? readSaved(input, values.events) : runPreview();
  const markdown = renderSummary(summarizePreview(preview.digest, preview.violations));
  if (values.output) fs.writeFileSync(values.output, markdown);
  else process.stdout.write(markdown);
  return preview.status;
}

try {
  process.exitCode = main();
} catch (err) {
  console.error(`preview-summary: ${(err as Error).message}`);
  process.exitCode = 2;
}
