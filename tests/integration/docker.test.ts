import * as assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as path from "node:path";
import { liveLeases } from "../harness/docker";
import { RUN_DIR } from "../harness/env";
import { REPO, TSX_LOADER } from "./runtime/helpers";

const dockerUp = () =>
  new Promise<boolean>((resolve) =>
    execFile("docker", ["version", "--format", "{{.Server.Version}}"], { timeout: 10_000 }, (err) =>
      resolve(!err),
    ),
  );

/** A separate process (a test run) holding a Docker daemon lease until `release()`. */
class LeaseHolder {
  private readonly child: ChildProcess;
  private output = "";

  constructor(name: string) {
    this.child = spawn(
      process.execPath,
      ["--import", TSX_LOADER, path.join(REPO, "tests/harness/docker.ts"), path.join(RUN_DIR, name)],
      { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] },
    );
    this.child.stdout?.on("data", (d: Buffer) => {
      this.output += d.toString();
    });
  }

  private waitFor(line: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.output.match(line);
        if (m) return resolve(m);
        if (this.child.exitCode !== null)
          return reject(new Error(`exited ${this.child.exitCode}: ${this.output}`));
        setTimeout(check, 100);
      };
      check();
    });
  }

  async leased(): Promise<boolean> {
    return (await this.waitFor(/leased (true|false)/))[1] === "true";
  }

  async release(): Promise<void> {
    this.child.stdin?.write("stop\n");
    await this.waitFor(/released/);
  }
}

describe("the Docker daemon shared by concurrent test runs", function () {
  this.timeout(3 * 60_000);

  it("stays up for a run still using it after the run that started it is done, and stops after the last", async () => {
    const first = new LeaseHolder("docker-first");
    const startedByARun = await first.leased();
    const second = new LeaseHolder("docker-second");
    await second.leased();
    await first.release();
    assert.ok(await dockerUp(), "the second run still has its daemon");
    await second.release();
    // A daemon that was running before any test run is never stopped; one a run started is
    // stopped once no run holds a lease (other runs on the host, or this one, may hold one).
    const othersHolding = liveLeases().length > 0;
    assert.equal(await dockerUp(), !startedByARun || othersHolding);
  });
});
