/**
 * A stand-in for the `k3d` CLI, for tests only: the sub-commands the K3dCluster provider uses,
 * backed by the local control plane (etcd + kube-apiserver + controllers + kwok) instead of k3s
 * in Docker. Clusters outlive this process; their state lives under $K3D_STANDIN_HOME.
 * Every invocation is appended to $K3D_STANDIN_HOME/calls.log so tests can assert arguments.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { startControlPlane } from "./controlPlane";

const home = process.env.K3D_STANDIN_HOME;
if (!home) {
  console.error("K3D_STANDIN_HOME is not set (this k3d is the test stand-in)");
  process.exit(2);
}
fs.mkdirSync(home, { recursive: true });
fs.appendFileSync(path.join(home, "calls.log"), `${JSON.stringify(process.argv.slice(2))}\n`);

const clusterDir = (name: string) => path.join(home, "clusters", name);
const pidsOf = (name: string): number[] => {
  try {
    return JSON.parse(fs.readFileSync(path.join(clusterDir(name), "pids.json"), "utf8"));
  } catch {
    return [];
  }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const running = (name: string) => pidsOf(name).length > 0 && pidsOf(name).every(alive);

async function stopCluster(name: string) {
  for (const pid of pidsOf(name).reverse()) {
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (pidsOf(name).some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pidsOf(name)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  fs.rmSync(path.join(clusterDir(name), "pids.json"), { force: true });
}

function fail(message: string): never {
  console.error(`FATA[0000] ${message}`);
  process.exit(1);
}

async function main(argv: string[]) {
  const [group, verb, ...rest] = argv;
  const name = rest.find((a) => !a.startsWith("-"));
  if (group === "version") {
    console.log("k3d version v5.8.3 (obol-stack test stand-in)");
    return;
  }
  if (group === "cluster" && verb === "list") {
    const names = fs.existsSync(path.join(home!, "clusters"))
      ? fs.readdirSync(path.join(home!, "clusters"))
      : [];
    const list = names.map((n) => {
      const up = running(n);
      return {
        name: n,
        serversCount: 1,
        serversRunning: up ? 1 : 0,
        agentsCount: 0,
        agentsRunning: 0,
        nodes: [
          {
            name: `k3d-${n}-server-0`,
            role: "server",
            State: { Running: up, Status: up ? "running" : "exited" },
          },
        ],
      };
    });
    console.log(JSON.stringify(list));
    return;
  }
  if (group === "cluster" && verb === "create") {
    if (!name) fail("cluster name required");
    if (name.length > 32) fail(`cluster name '${name}' is too long (max 32 characters)`);
    if (fs.existsSync(clusterDir(name)))
      fail(`Failed to create cluster '${name}' because a cluster with that name already exists`);
    console.log(`INFO[0000] Creating cluster '${name}' (stand-in: local control plane)`);
    await startControlPlane({ dir: clusterDir(name), detach: true });
    console.log(`INFO[0008] Cluster '${name}' created successfully!`);
    return;
  }
  if (group === "cluster" && verb === "start") {
    if (!name || !fs.existsSync(clusterDir(name))) fail(`No nodes found for given cluster '${name}'`);
    if (!running(name)) await startControlPlane({ dir: clusterDir(name), detach: true });
    console.log(`INFO[0005] Started cluster '${name}'`);
    return;
  }
  if (group === "cluster" && verb === "stop") {
    if (!name || !fs.existsSync(clusterDir(name))) fail(`No nodes found for given cluster '${name}'`);
    await stopCluster(name);
    console.log(`INFO[0002] Stopped cluster '${name}'`);
    return;
  }
  if (group === "cluster" && verb === "delete") {
    if (name && fs.existsSync(clusterDir(name))) {
      await stopCluster(name);
      fs.rmSync(clusterDir(name), { recursive: true, force: true });
    }
    console.log(`INFO[0001] Successfully deleted cluster ${name}!`);
    return;
  }
  if (group === "kubeconfig" && verb === "get") {
    if (!name || !fs.existsSync(clusterDir(name))) fail(`cluster '${name}' not found`);
    process.stdout.write(fs.readFileSync(path.join(clusterDir(name), "kubeconfig.yaml"), "utf8"));
    return;
  }
  if (group === "image" && verb === "import") {
    const cluster = rest[rest.indexOf("--cluster") + 1];
    if (!cluster || !fs.existsSync(clusterDir(cluster))) fail(`cluster '${cluster}' not found`);
    const images = rest.filter((a, i) => !a.startsWith("-") && rest[i - 1] !== "--cluster");
    fs.appendFileSync(path.join(clusterDir(cluster), "images.log"), `${images.join("\n")}\n`);
    console.log(`INFO[0001] Successfully imported ${images.length} image(s) into 1 cluster(s)`);
    return;
  }
  fail(`the stand-in does not implement: k3d ${argv.join(" ")}`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => fail(err instanceof Error ? err.message : String(err)),
);
