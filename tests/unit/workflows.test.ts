import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { COMMENT_MARKER } from "../../scripts/previewSummary/markdown";

const WORKFLOWS = path.resolve(__dirname, "../../.github/workflows");

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  if?: string;
}
interface Workflow {
  name?: string;
  on?: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs?: Record<string, { "runs-on"?: string; steps?: Step[]; permissions?: Record<string, string> }>;
}

/** Problems with the shape GitHub Actions requires, as readable strings. */
function lintWorkflow(doc: Workflow): string[] {
  const problems: string[] = [];
  if (!doc.on || typeof doc.on !== "object") problems.push("`on` must be a map of triggers");
  const jobs = Object.entries(doc.jobs ?? {});
  if (jobs.length === 0) problems.push("no jobs");
  for (const [id, job] of jobs) {
    if (typeof job["runs-on"] !== "string" || job["runs-on"] === "")
      problems.push(`jobs.${id}.runs-on is missing`);
    const steps = job.steps ?? [];
    if (steps.length === 0) problems.push(`jobs.${id} has no steps`);
    steps.forEach((step, i) => {
      const kinds = [step.uses, step.run].filter((x) => typeof x === "string" && x.length > 0);
      if (kinds.length !== 1) problems.push(`jobs.${id}.steps[${i}] needs exactly one of uses or run`);
      if (
        step.uses &&
        !/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[\w.-]+$/.test(step.uses) &&
        !step.uses.startsWith("./")
      ) {
        problems.push(`jobs.${id}.steps[${i}].uses "${step.uses}" is not owner/repo@ref`);
      }
    });
  }
  return problems;
}

describe("GitHub workflows", () => {
  const file = path.join(WORKFLOWS, "preview.yml");
  const text = fs.readFileSync(file, "utf8");
  const doc = parseYaml(text) as Workflow;

  it("preview.yml parses as YAML with the required keys", () => {
    assert.deepEqual(lintWorkflow(doc), []);
    assert.ok(doc.on && "pull_request" in doc.on, "runs on pull_request");
    assert.equal(doc.permissions?.["pull-requests"], "write", "may comment on the PR");
  });

  it("previews with the policy pack on a local file:// backend and posts one marked comment", () => {
    const steps = doc.jobs?.preview?.steps ?? [];
    const preview = steps.find((s) => s.run?.includes("npm run preview:summary"));
    assert.ok(preview?.run?.includes("--policy-pack policy"), "the policy pack is enabled");
    assert.match(text, /PULUMI_BACKEND_URL: file:\/\//);
    assert.ok(steps.some((s) => s.run?.includes("npm ci") && s.run.includes("--prefix policy")));
    const comment = steps.find((s) => s.uses?.startsWith("actions/github-script@"));
    const script = String(comment?.with?.script ?? "");
    assert.ok(script.includes(COMMENT_MARKER), "finds its own comment by the summary's marker");
    assert.match(script, /updateComment/);
    assert.match(script, /createComment/);
  });

  it("the linter catches what GitHub would reject", () => {
    assert.deepEqual(
      lintWorkflow({
        on: { pull_request: {} },
        jobs: {
          a: { steps: [{ name: "x" }, { uses: "actions/checkout@v4", run: "ls" }, { uses: "checkout" }] },
        },
      }),
      [
        "jobs.a.runs-on is missing",
        "jobs.a.steps[0] needs exactly one of uses or run",
        "jobs.a.steps[1] needs exactly one of uses or run",
        'jobs.a.steps[2].uses "checkout" is not owner/repo@ref',
      ],
    );
  });
});
