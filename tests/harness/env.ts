import * as fs from "node:fs";
import * as path from "node:path";
import { type ControlPlane, startControlPlane } from "./controlPlane";

/** Per-run scratch space inside the checkout (git-ignored), kept after failures for the logs. */
export const RUN_DIR = path.resolve(__dirname, "../../.tmp", `run-${process.pid}`);

let shared: Promise<ControlPlane> | undefined;

/**
 * One control plane for the whole test run: start-up costs seconds, so tests that only need
 * "a cluster" share it and isolate themselves by namespace. Tests that destroy a cluster
 * start their own.
 */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= startControlPlane({ dir: path.join(RUN_DIR, "shared-cluster") });
  return shared;
}

/** A fresh scratch directory for one test. */
export function scratchDir(name: string): string {
  const dir = path.join(RUN_DIR, name.replace(/[^a-zA-Z0-9._-]+/g, "-"));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    if (shared) {
      const cp = await shared.catch(() => undefined);
      await cp?.stop();
      shared = undefined;
    }
  },
};
