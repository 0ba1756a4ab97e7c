/**
 * The locally built images start the way the cluster runs them: as uid 65532 with a read-only
 * root filesystem and no capabilities.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { type Dockerd, ensureDockerd } from "../harness/docker";
import { RUN_DIR } from "../harness/env";
import { dockerBin, ensureImages } from "../harness/images";
import { freePort, waitFor } from "../harness/processes";
import { answerFor } from "../images/model-server/server";

const RESTRICTED = [
  "--user",
  "65532:65532",
  "--read-only",
  "--cap-drop",
  "ALL",
  "--security-opt",
  "no-new-privileges",
];

function docker(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile(dockerBin(), args, { timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
    ),
  );
}

describe("test images", function () {
  // A cold build of the runtime image runs npm ci and tsc inside Docker.
  this.timeout(45 * 60_000);
  let dockerd: Dockerd | undefined;
  before(async () => {
    dockerd = await ensureDockerd({ logDir: RUN_DIR });
  });
  after(async () => {
    await dockerd?.stop();
  });

  it("the runtime image (controller/Dockerfile) runs its sub-commands as non-root on a read-only root", async () => {
    const { runtime } = await ensureImages({ only: ["runtime"] });
    const usage = await docker(["run", "--rm", ...RESTRICTED, runtime.tag]);
    assert.match(usage.output, /usage: obol-runtime <controller\|gateway\|facilitator\|buyer>/);
    // Each sub-command loads and validates its configuration (none given here).
    const gateway = await docker(["run", "--rm", ...RESTRICTED, runtime.tag, "gateway"]);
    assert.notEqual(gateway.code, 0);
    assert.match(gateway.output, /FACILITATOR_URL/);
    const buyer = await docker(["run", "--rm", ...RESTRICTED, runtime.tag, "buyer", "--no-such-flag"]);
    assert.match(buyer.output, /unknown flag --no-such-flag: known flags are/);
  });

  it("the model server image answers on /health, /v1/models and /v1/chat/completions", async () => {
    const { modelServer } = await ensureImages({ only: ["modelServer"] });
    const port = await freePort();
    const name = `obol-model-server-test-${process.pid}`;
    const started = await docker([
      "run",
      "-d",
      "--rm",
      "--name",
      name,
      ...RESTRICTED,
      "-p",
      `127.0.0.1:${port}:8080`,
      "-e",
      "MODELS=alpha,beta",
      modelServer.tag,
    ]);
    assert.equal(started.code, 0, started.output);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor("the model server", async () => (await fetch(`${base}/health`)).ok, {
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: { id: string }[] };
      assert.deepEqual(
        models.data.map((m) => m.id),
        ["alpha", "beta"],
      );
      const messages = [{ role: "user", content: "ping" }];
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "alpha", messages }),
      });
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      assert.equal(body.choices[0]?.message.content, answerFor("alpha", messages));
      const seen = (await (await fetch(`${base}/test/requests`)).json()) as { count: number };
      assert.equal(seen.count, 2, "GET /v1/models and the chat completion");
    } finally {
      await docker(["rm", "-f", name]);
    }
  });
});
