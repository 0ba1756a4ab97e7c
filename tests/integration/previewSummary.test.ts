import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { generatePrivateKey } from "viem/accounts";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { programStack, REPO_ROOT } from "../harness/project";
import { outputCollector } from "../harness/pulumi";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NEW_PAY_TO = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

describe("npm run preview:summary on a fresh preview of the real program", function () {
  this.timeout(10 * 60_000);
  let stack: Stack;
  let cluster: ControlPlane;
  const log = outputCollector();
  // A known signer key, so the test can look for it everywhere the tool writes.
  const signerKey = generatePrivateKey();

  before(async () => {
    cluster = await sharedControlPlane();
    stack = await programStack({
      dir: scratchDir("preview-summary"),
      stackName: "summary",
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
        "obol-stack:namespace": { value: `obol-ps-${process.pid}` },
        // A self-run facilitator: its key becomes a Kubernetes Secret, whose debug events carry it.
        "obol-stack:facilitator": {
          value: JSON.stringify({ mode: "self", rpcUrl: "http://127.0.0.1:8545" }),
        },
        "obol-stack:facilitatorSignerKey": { value: signerKey, secret: true },
      },
    });
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
  });

  after(async () => {
    if (stack) await stack.destroy({ onOutput: log.onOutput }).catch(() => undefined);
  });

  it("shows a price change and a payTo change, with the payTo flagged high risk", async () => {
    const offers = JSON.parse((await stack.getConfig("obol-stack:offers")).value);
    offers[1].payment.price.perRequest = "0.002";
    offers[1].payment.payTo = NEW_PAY_TO;
    await stack.setConfig("obol-stack:offers", { value: JSON.stringify(offers) });

    const ws = stack.workspace as LocalWorkspace;
    // Everything the tool writes goes to a temporary directory of its own, or to --output.
    const outDir = scratchDir("preview-summary-output");
    const tmp = fs.mkdtempSync(path.join(outDir, "tmp-"));
    const output = path.join(outDir, "summary.md");
    const run = spawnSync(
      path.join(REPO_ROOT, "node_modules/.bin/tsx"),
      [
        path.join(REPO_ROOT, "scripts/preview-summary.ts"),
        "--stack",
        stack.name,
        "--cwd",
        ws.workDir,
        "--policy-pack",
        path.join(REPO_ROOT, "policy"),
        "--output",
        output,
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...ws.envVars, TMPDIR: tmp },
        encoding: "utf8",
        maxBuffer: 64 << 20,
      },
    );
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    const md = fs.readFileSync(output, "utf8");

    // No secret value persists: not in the summary, the tool's temporary files, or anything else
    // written under TMPDIR during the run (the engine's, the language host's, the policy pack's).
    const secrets = { signerKey: signerKey.slice(2), "kubeconfig token": cluster.token };
    const written = [output, ...filesUnder(tmp)];
    for (const file of written) {
      const text = fs.readFileSync(file).toString("latin1");
      for (const [name, value] of Object.entries(secrets))
        assert.ok(!text.includes(value), `${file} holds the ${name}`);
    }
    assert.deepEqual(
      fs.readdirSync(tmp).filter((f) => f.startsWith("preview-summary-")),
      [],
      "the tool leaves no temporary directory behind",
    );
    assert.match(md, /^<!-- obol-stack-preview-summary -->\n## Preview of `summary`/);
    assert.match(
      md,
      /offers: 0 added, 0 removed, 1 changed · ⚠️ \*\*1 high-risk change\*\* · 0 platform changes · policy: ✅/,
    );
    assert.match(
      md,
      /\| `weather` ⚠️ \| changed \| price per request on `eip155:84532`: 0\.0005 → \*\*0\.002\*\*<br>/,
    );
    assert.ok(md.includes(`**high risk** payTo on \`eip155:84532\`: \`${PAY_TO}\` → \`${NEW_PAY_TO}\``), md);
    assert.ok(!md.includes("llama"), "the unchanged offer is not listed");
  });
});

/** Every regular file below `dir` (FIFOs and sockets hold nothing on disk). */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => path.join(dir, f))
    .filter((f) => fs.lstatSync(f).isFile());
}
