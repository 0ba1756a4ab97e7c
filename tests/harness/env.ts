import * as fs from "node:fs";
import * as path from "node:path";
import { type ControlPlane, startControlPlane } from "./controlPlane";
import { type Dockerd, ensureDockerd } from "./docker";
import { ensureImages, type ImageName } from "./images";
import { type RealCluster, startRealCluster } from "./realCluster";

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

let sharedReal: Promise<{ cluster: RealCluster; dockerd: Dockerd }> | undefined;

/**
 * One real-node cluster per test run (starting one takes a while, and only one runs per host),
 * with `images` built if needed and imported into its containerd. Tests isolate themselves by
 * namespace; the cluster stops when the run ends.
 */
export async function sharedRealCluster(images: ImageName[] = []): Promise<RealCluster> {
  sharedReal ??= (async () => {
    const dockerd = await ensureDockerd({ logDir: RUN_DIR });
    const { pause } = await ensureImages({ only: ["pause"] });
    const cluster = await startRealCluster({ dir: path.join(RUN_DIR, "real-cluster"), sandboxImage: pause });
    return { cluster, dockerd };
  })();
  const { cluster } = await sharedReal;
  const built = await ensureImages({ only: images });
  for (const name of images) await cluster.importImage(built[name].tar);
  return cluster;
}

/**
 * The shared real cluster lost and replaced by a fresh one (`RealCluster.recreate`: every pod,
 * etcd's data, the volumes and the credentials gone; the same node address and API server URL),
 * with `images` imported again. Everything on the old cluster is gone, so only a test that owns
 * what it deployed may call this; tests that ask for the shared cluster afterwards get the new one.
 */
export async function recreateSharedRealCluster(images: ImageName[] = []): Promise<RealCluster> {
  if (!sharedReal) throw new Error("no shared real cluster to recreate: call sharedRealCluster() first");
  const { cluster, dockerd } = await sharedReal;
  sharedReal = cluster.recreate().then((fresh) => ({ cluster: fresh, dockerd }));
  return sharedRealCluster(images);
}

/** A fresh scratch directory for one test. */
export function scratchDir(name: string): string {
  const dir = path.join(RUN_DIR, name.replace(/[^a-zA-Z0-9._-]+/g, "-"));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Stops the shared clusters (and a dockerd started for them); `destroy` also deletes the real
 * cluster's data (etcd, containerd's images, volumes) instead of keeping it for the logs.
 */
export async function stopSharedClusters(opts: { destroy?: boolean } = {}): Promise<void> {
  if (shared) {
    const cp = await shared.catch(() => undefined);
    await cp?.stop();
    shared = undefined;
  }
  if (sharedReal) {
    const real = await sharedReal.catch(() => undefined);
    await (opts.destroy ? real?.cluster.destroy() : real?.cluster.stop());
    await real?.dockerd.stop();
    sharedReal = undefined;
  }
}

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(sharedReal ? 240_000 : 60_000);
    await stopSharedClusters();
  },
};
