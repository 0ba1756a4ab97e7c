/**
 * A `pulumi up` killed in the middle (a crash, a closed terminal, SIGKILL) leaves the file://
 * backend locked and an operation pending. This test crashes a real `pulumi up` and then runs the
 * recovery the README's troubleshooting table gives, command for command, with the pinned CLI.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { scratchDir } from "../harness/env";
import { startProcess, tail, waitFor } from "../harness/processes";
import { testStack } from "../harness/pulumi";

describe("recovering from a crash during `pulumi up` (file:// backend, pinned CLI)", function () {
  this.timeout(15 * 60_000);
  let stack: Stack;
  let dir: string;

  /** The CLI as a user runs it, in the stack's project with its backend and passphrase. */
  const pulumi = (...args: string[]) => {
    const ws = stack.workspace as LocalWorkspace;
    const run = spawnSync("pulumi", [...args, "--stack", stack.name, "--non-interactive"], {
      cwd: ws.workDir,
      env: { ...process.env, ...ws.envVars },
      encoding: "utf8",
      maxBuffer: 64 << 20,
    });
    return { status: run.status, output: `${run.stdout}\n${run.stderr}` };
  };
  const pendingOperations = () => {
    const exported = pulumi("stack", "export");
    assert.equal(exported.status, 0, exported.output);
    const json = exported.output.slice(0, exported.output.lastIndexOf("}") + 1);
    return (JSON.parse(json) as { deployment: { pending_operations?: unknown[] } }).deployment
      .pending_operations;
  };

  before(async () => {
    dir = scratchDir("crash-recovery");
    stack = await testStack({
      workDir: path.resolve(__dirname, "../fixtures/crash"),
      stackName: `crash-${process.pid}`,
      stateDir: path.join(dir, "state"),
      config: { slowMs: { value: "600000" } },
    });
  });

  after(async () => {
    if (stack) await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  });

  it("the documented recovery unlocks the stack, clears the pending create, and up completes", async () => {
    const ws = stack.workspace as LocalWorkspace;
    const up = startProcess(
      "pulumi-up-crashing",
      "pulumi",
      ["up", "--yes", "--non-interactive", "--stack", stack.name],
      { logDir: path.join(dir, "logs"), cwd: ws.workDir, env: { ...process.env, ...ws.envVars } },
    );
    try {
      await waitFor(
        "`pulumi up` to be in the middle of the slow create",
        async () => {
          if (up.child.exitCode !== null) throw new Error(`pulumi up exited:\n${tail(up.logFile)}`);
          return /slow creating/.test(fs.readFileSync(up.logFile, "utf8"));
        },
        { timeoutMs: 5 * 60_000, intervalMs: 500, describe: () => tail(up.logFile) },
      );
      process.kill(up.child.pid!, "SIGKILL"); // the CLI alone, as a crash would
      await waitFor(
        "the CLI to be gone",
        async () => up.child.exitCode !== null || up.child.signalCode !== null,
        {
          timeoutMs: 10_000,
        },
      );
    } finally {
      await up.stop(); // its plugins, still waiting on the slow create
    }

    // The symptom.
    await stack.setConfig("slowMs", { value: "10" });
    const locked = pulumi("up", "--yes");
    assert.notEqual(locked.status, 0);
    assert.match(locked.output, /the stack is currently locked by 1 lock\(s\)/);
    assert.match(locked.output, /created by .* \(pid [0-9]+\)/, "the lock names the process to check");
    assert.equal(pendingOperations()?.length, 1, "the interrupted create is pending in the state");

    // The recovery, as README's troubleshooting table gives it.
    const cancel = pulumi("cancel", "--yes");
    assert.equal(cancel.status, 0, cancel.output);
    const refresh = pulumi("refresh", "--clear-pending-creates", "--yes");
    assert.equal(refresh.status, 0, refresh.output);
    assert.equal(pendingOperations(), undefined, "no pending operation is left");
    const recovered = pulumi("up", "--yes");
    assert.equal(recovered.status, 0, recovered.output);
    assert.match(recovered.output, /slow created/);
    const again = pulumi("preview", "--expect-no-changes");
    assert.equal(again.status, 0, again.output);
  });
});
