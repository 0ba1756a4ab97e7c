import * as assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { waitFor } from "../harness/processes";
import { outputCollector, testStack } from "../harness/pulumi";

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** A directory as a provider process would have left it, last modified `ageSeconds` ago. */
function providerDir(tmp: string, name: string, ageSeconds: number, token: string): string {
  const dir = path.join(tmp, `pulumi-resource-kubernetes-${name}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, ".owner.lock"), "");
  fs.writeFileSync(path.join(dir, "kubeconfig123"), `token: ${token}\n`, { mode: 0o600 });
  const then = new Date(Date.now() - ageSeconds * 1000);
  fs.utimesSync(dir, then, then);
  return dir;
}

describe("the Kubernetes provider leaves no kubeconfig in the temporary directory", () => {
  let holder: ChildProcess | undefined;
  after(() => holder?.kill("SIGKILL"));

  it("removes its own copy when the engine stops it, and the copies of providers that were killed", async () => {
    const cluster = await sharedControlPlane();
    const scratch = scratchDir("provider-temp");
    const tmp = path.join(scratch, "tmp");
    fs.mkdirSync(tmp, { recursive: true });
    // Left by providers that did not get to clean up: one killed (its lock free), one still
    // running (its lock held by a live process), one that may still be starting (too new to judge).
    const killed = providerDir(tmp, "killed", 120, cluster.token);
    const running = providerDir(tmp, "running", 120, cluster.token);
    const starting = providerDir(tmp, "starting", 0, cluster.token);
    holder = spawn("flock", ["--exclusive", path.join(running, ".owner.lock"), "sleep", "600"], {
      stdio: "ignore",
    });
    // Held once a non-blocking attempt from another process fails.
    await waitFor(
      "the lock held by the stand-in provider",
      async () => spawnSync("flock", ["--nonblock", path.join(running, ".owner.lock"), "true"]).status !== 0,
      { timeoutMs: 10_000 },
    );

    const stack = await testStack({
      workDir: path.resolve(__dirname, "../fixtures/smoke"),
      stackName: "provider-temp",
      stateDir: path.join(scratch, "state"),
      config: {
        kubeconfig: { value: cluster.kubeconfig, secret: true },
        namespace: { value: `provider-temp-${process.pid}` },
      },
      // The engine, the language host and the provider inherit it.
      env: { TMPDIR: tmp },
    });
    const log = outputCollector();
    // A preview configures the provider with the kubeconfig, which is when it writes its copy.
    const preview = await stack.preview({ onOutput: log.onOutput });
    assert.equal(preview.changeSummary.create, 5, log.text());

    assert.ok(!fs.existsSync(killed), "the killed provider's directory is removed");
    assert.ok(fs.existsSync(running), "a running provider's directory is kept");
    assert.ok(fs.existsSync(starting), "a directory too new to judge is kept");
    const leftovers = fs
      .readdirSync(tmp)
      .filter((name) => ![path.basename(running), path.basename(starting)].includes(name));
    assert.deepEqual(leftovers, [], "the provider that ran removed its directory when the engine stopped it");
    const withToken = filesUnder(tmp).filter(
      (f) =>
        !f.startsWith(running) &&
        !f.startsWith(starting) &&
        fs.readFileSync(f, "utf8").includes(cluster.token),
    );
    assert.deepEqual(withToken, [], "no file outside the seeded directories holds the cluster's token");
    await stack.workspace.removeStack("provider-temp");
  });
});
