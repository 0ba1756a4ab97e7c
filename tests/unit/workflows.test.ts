import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { COMMENT_MARKER } from "../../scripts/previewSummary/markdown";
import { tempDir } from "../harness/tempDirs";

const WORKFLOWS = path.resolve(__dirname, "../../.github/workflows");

/** A GitHub Actions expression as written in a workflow: `${{ expr }}`. */
const expression = (expr: string) => `$\{{ ${expr} }}`;

function tmpFile(): string {
  const file = path.join(tempDir("gh-"), "file");
  fs.writeFileSync(file, "");
  return file;
}

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

  const steps = doc.jobs?.preview?.steps ?? [];
  const step = (name: string) => {
    const found = steps.find((s) => s.name === name);
    assert.ok(found, `no step "${name}"`);
    return found;
  };

  it("previews with the policy pack and posts one marked comment", () => {
    const preview = steps.find((s) => s.run?.includes("scripts/preview-summary.ts"));
    assert.ok(preview?.run?.includes("--policy-pack policy"), "the policy pack is enabled");
    assert.ok(steps.some((s) => s.run?.includes("npm ci") && s.run.includes("--prefix policy")));
    const comment = steps.find((s) => s.uses?.startsWith("actions/github-script@"));
    const script = String(comment?.with?.script ?? "");
    assert.ok(script.includes(COMMENT_MARKER), "finds its own comment by the summary's marker");
    assert.match(script, /updateComment/);
    assert.match(script, /createComment/);
  });

  it("installs the pinned Pulumi with pulumi/actions and reads the backend from secrets", () => {
    const install = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
    assert.equal(install?.with?.["pulumi-version"], expression("steps.versions.outputs.pulumi"));
    const env = doc.jobs?.preview as { env?: Record<string, string> };
    assert.equal(env.env?.PULUMI_ACCESS_TOKEN, expression("secrets.PULUMI_ACCESS_TOKEN"));
    assert.equal(env.env?.CONFIGURED_BACKEND_URL, expression("secrets.PULUMI_BACKEND_URL"));
    const versions = spawnSync("bash", ["-c", String(step("Read the pinned Pulumi version").run)], {
      cwd: path.resolve(__dirname, "../.."),
      env: { ...process.env, GITHUB_OUTPUT: tmpFile() },
      encoding: "utf8",
    });
    assert.equal(versions.status, 0, versions.stderr);
  });

  /** Runs the "Choose the state backend" script with these secrets; returns what it exported. */
  const chooseBackend = (secrets: Record<string, string>) => {
    const [envFile, outFile] = [tmpFile(), tmpFile()];
    const run = spawnSync("bash", ["-e", "-c", String(step("Choose the state backend").run)], {
      env: {
        PATH: process.env.PATH,
        GITHUB_WORKSPACE: "/ws",
        GITHUB_ENV: envFile,
        GITHUB_OUTPUT: outFile,
        PULUMI_ACCESS_TOKEN: "",
        CONFIGURED_BACKEND_URL: "",
        ...secrets,
      },
      encoding: "utf8",
    });
    assert.equal(run.status, 0, run.stderr);
    return { env: fs.readFileSync(envFile, "utf8").trim(), output: fs.readFileSync(outFile, "utf8").trim() };
  };

  it("uses the real backend when a secret names one, else an empty file:// state", function () {
    this.timeout(120_000); // three bash runs; slow on a loaded machine
    assert.deepEqual(chooseBackend({ CONFIGURED_BACKEND_URL: "s3://state/obol" }), {
      env: "PULUMI_BACKEND_URL=s3://state/obol",
      output: "mode=real",
    });
    assert.deepEqual(chooseBackend({ PULUMI_ACCESS_TOKEN: "pul-123" }), {
      env: "PULUMI_BACKEND_URL=https://api.pulumi.com",
      output: "mode=real",
    });
    assert.deepEqual(chooseBackend({}), {
      env: "PULUMI_BACKEND_URL=file:///ws/.pulumi-state",
      output: "mode=empty",
    });
  });

  it("real state: selects the deployed stack and never creates one; the fallback alone gets the banner", () => {
    const real = step("Select the deployed stack (real backend)");
    assert.equal(real.if, "steps.backend.outputs.mode == 'real'");
    assert.ok(!String(real.run).includes("--create"));
    assert.ok(String(step("Select a throwaway stack (no backend configured)").run).includes("--create"));
    assert.equal(
      step("Restore fallback state of the base branch").if,
      "steps.backend.outputs.mode == 'empty'",
    );
    const banner = step("Banner for a preview without real state");
    assert.match(String(banner.if), /mode == 'empty'/);
    // The banner script really prepends, keeping the summary (and its marker) intact.
    const dir = tempDir("banner-");
    fs.writeFileSync(path.join(dir, "preview-summary.md"), `${COMMENT_MARKER}\n# Summary\n`);
    const run = spawnSync("bash", ["-e", "-c", String(banner.run)], { cwd: dir, encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    const body = fs.readFileSync(path.join(dir, "preview-summary.md"), "utf8");
    assert.match(body, /^> \[!WARNING\]\n> \*\*Previewed against empty state\*\*/);
    assert.ok(body.endsWith(`${COMMENT_MARKER}\n# Summary\n`));
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
