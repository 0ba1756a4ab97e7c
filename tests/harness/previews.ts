import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import {
  type PolicyViolation,
  type PreviewDigest,
  policyViolationsFromEventLog,
} from "../../scripts/previewSummary/model";

export interface JsonPreview {
  digest: PreviewDigest;
  /** The raw `--json` output, as `pulumi preview --json` printed it. */
  json: string;
  violations: PolicyViolation[];
  /** The policy events of the run's engine event log, one JSON event per line. */
  policyEventLines: string[];
  status: number;
}

/**
 * `pulumi preview --json --event-log …` on a test stack, through the CLI (the Automation API
 * has no --json): the same command the PR workflow runs.
 */
export function previewJson(stack: Stack, opts: { policyPack?: string } = {}): JsonPreview {
  const ws = stack.workspace as LocalWorkspace;
  const eventLog = path.join(ws.workDir, `events-${Date.now()}.jsonl`);
  const args = ["preview", "--json", "--non-interactive", "--stack", stack.name, "--event-log", eventLog];
  if (opts.policyPack) args.push("--policy-pack", opts.policyPack);
  const run = spawnSync("pulumi", args, {
    cwd: ws.workDir,
    // --event-log (where policy violations are recorded) exists only with debug commands on.
    env: { ...process.env, ...ws.envVars, PULUMI_DEBUG_COMMANDS: "true" },
    encoding: "utf8",
    maxBuffer: 256 << 20,
  });
  if (run.error) throw run.error;
  let digest: PreviewDigest;
  try {
    digest = JSON.parse(run.stdout) as PreviewDigest;
  } catch {
    throw new Error(
      `pulumi preview --json (exit ${run.status}) printed no JSON:\n${run.stdout}\n${run.stderr}`,
    );
  }
  const log = fs.existsSync(eventLog) ? fs.readFileSync(eventLog, "utf8") : "";
  fs.rmSync(eventLog, { force: true });
  return {
    digest,
    json: run.stdout,
    violations: policyViolationsFromEventLog(log),
    policyEventLines: log.split("\n").filter((l) => l.includes('"policyEvent"')),
    status: run.status ?? 1,
  };
}

const UNCHANGED_OPS = new Set(["same", "refresh"]);

/**
 * A preview digest without the old and new states of resources it leaves unchanged (the CRD
 * schemas alone are most of a digest): what a saved fixture keeps. Changed steps are verbatim.
 */
export function compactDigest(digest: PreviewDigest): PreviewDigest {
  return {
    ...digest,
    steps: (digest.steps ?? []).map((s) =>
      UNCHANGED_OPS.has(s.op) && Object.keys(s.detailedDiff ?? {}).length === 0
        ? { op: s.op, urn: s.urn }
        : s,
    ),
  };
}
