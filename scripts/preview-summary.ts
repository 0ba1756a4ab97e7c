/**
 * A Markdown summary of a preview for pull-request review (`npm run preview:summary`).
 *
 *   npm run preview:summary -- --stack dev --policy-pack policy [--output summary.md]
 *       runs `pulumi preview --json --event-log <named pipe>` and summarizes it (the event
 *       stream carries secrets: it is read from the pipe in memory and never stored);
 *   npm run preview:summary -- --input preview.json [--events events.jsonl]
 *       summarizes a saved `pulumi preview --json` (policy violations come from an event log).
 *
 * Exits with the preview's own status (after writing the summary), so CI can post the summary
 * and still fail on errors or mandatory policy violations.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";
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

/**
 * The engine's event stream carries secret values (debug events about Secret objects), so it is
 * never written to disk: `--event-log` points at a named pipe in a private temporary directory,
 * read here as it is written, and only policy events are kept. The directory is also the engine's
 * TMPDIR, and it is removed on every path out of this function.
 */
async function runPreview(): Promise<Preview> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "preview-summary-"));
  try {
    const pipe = path.join(dir, "events");
    const mkfifo = spawnSync("mkfifo", ["-m", "600", pipe], { encoding: "utf8" });
    if (mkfifo.status !== 0) {
      throw new Error(`could not create a pipe for the event log: ${mkfifo.error?.message ?? mkfifo.stderr}`);
    }
    const policyLines = readPolicyEvents(pipe);
    const args = ["preview", "--json", "--non-interactive", "--event-log", pipe];
    if (values.stack) args.push("--stack", values.stack);
    if (values.cwd) args.push("--cwd", values.cwd);
    for (const pack of values["policy-pack"] ?? []) args.push("--policy-pack", path.resolve(pack));
    for (const cfg of values["policy-pack-config"] ?? [])
      args.push("--policy-pack-config", path.resolve(cfg));
    // The engine and its plugins write temporary files too (the Kubernetes provider leaves a copy
    // of the kubeconfig, a secret, in TMPDIR): they all go to this directory, removed below.
    const run = await runPulumi(args, dir);
    // If pulumi never opened the pipe (it failed first), the reader still waits for a writer:
    // open and close the write end, so it sees the end of the stream.
    try {
      fs.closeSync(fs.openSync(pipe, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader left, the stream was read to its end.
    }
    const violations = policyViolationsFromEventLog(await policyLines);
    let digest: PreviewDigest;
    try {
      digest = JSON.parse(run.stdout) as PreviewDigest;
    } catch {
      throw new Error(
        `pulumi preview --json printed no JSON (exit ${run.status}):\n${run.stdout.slice(-4000)}`,
      );
    }
    return { digest, violations, status: run.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads the event stream from a named pipe, keeping only the lines of policy events (in memory). */
function readPolicyEvents(pipe: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const kept: string[] = [];
    const lines = readline.createInterface({ input: fs.createReadStream(pipe), crlfDelay: Infinity });
    lines.on("line", (line) => {
      if (line.includes('"policyEvent"')) kept.push(line);
    });
    lines.on("close", () => resolve(kept.join("\n")));
    lines.on("error", reject);
  });
}

function runPulumi(args: string[], tmpDir: string): Promise<{ stdout: string; status: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn("pulumi", args, {
      stdio: ["ignore", "pipe", "inherit"],
      // --event-log (where policy violations are recorded) exists only with debug commands on.
      env: { ...process.env, PULUMI_DEBUG_COMMANDS: "true", TMPDIR: tmpDir },
    });
    const out: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.on("error", (err) => reject(new Error(`could not run pulumi: ${err.message}`)));
    child.on("close", (code) => resolve({ stdout: Buffer.concat(out).toString("utf8"), status: code ?? 1 }));
  });
}

async function main(): Promise<number> {
  const input = values.input ?? positionals[0];
  const preview = input ? readSaved(input, values.events) : await runPreview();
  const markdown = renderSummary(summarizePreview(preview.digest, preview.violations));
  if (values.output) fs.writeFileSync(values.output, markdown);
  else process.stdout.write(markdown);
  return preview.status;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`preview-summary: ${(err as Error).message}`);
    process.exitCode = 2;
  },
);
