import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { freePort, type ManagedProcess, startProcess, tail, waitFor } from "./processes";

/** A single-member etcd on loopback for a test API server: data in `<dir>/etcd`, no fsync. */
export function etcdArgs(dir: string, clientPort: number, peerPort: number): string[] {
  return [
    "--name=node0",
    `--data-dir=${path.join(dir, "etcd")}`,
    `--listen-client-urls=http://127.0.0.1:${clientPort}`,
    `--advertise-client-urls=http://127.0.0.1:${clientPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=node0=http://127.0.0.1:${peerPort}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ];
}

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, and kwok faking a kubelet for one node. Deployments become Available,
 * Services get endpoints and Namespaces finish deleting. No container ever runs: pod IPs are
 * fake metadata and must never be dialled.
 */
export interface ControlPlane {
  readonly dir: string;
  readonly server: string;
  readonly token: string;
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  /** Stops every process (data stays in `dir`). */
  stop(): Promise<void>;
  /** Stops every process and deletes `dir`: the cluster is gone, as after `k3d cluster delete`. */
  destroy(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Working directory for data, keys and logs; created if missing. */
  dir: string;
  /** Name of the fake node (default `kwok-node-0`). */
  nodeName?: string;
  /** Keep processes alive after this Node process exits (used by the k3d stand-in). */
  detach?: boolean;
}

export const FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node";

function binary(name: string): string {
  // scripts/with-tools puts the toolchain on PATH; fail with the fix rather than ENOENT.
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(
    `${name} is not on PATH: build the toolchain with \`npm run tools\` and run tests through npm scripts`,
  );
}

export function kubeconfigYaml(server: string, token: string, name = "obol-test"): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${name}`,
    "  cluster:",
    `    server: ${server}`,
    "    insecure-skip-tls-verify: true",
    "users:",
    `- name: ${name}-admin`,
    "  user:",
    `    token: ${token}`,
    "contexts:",
    `- name: ${name}`,
    "  context:",
    `    cluster: ${name}`,
    `    user: ${name}-admin`,
    "    namespace: default",
    `current-context: ${name}`,
    "",
  ].join("\n");
}

/** Minimal authenticated request to the API server (self-signed serving certificate). */
export function kubeRequest(
  server: string,
  token: string,
  method: string,
  apiPath: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      `${server}${apiPath}`,
      {
        method,
        rejectUnauthorized: false,
        headers: {
          authorization: `Bearer ${token}`,
          accept: "application/json",
          ...(payload
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
            : {}),
        },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${apiPath}: timeout`)));
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/**
 * `count` free ports picked once and kept in `file` beside the cluster's data, so that a stopped
 * and restarted cluster keeps its addresses.
 */
export async function persistentPorts(file: string, count: number): Promise<number[]> {
  if (!fs.existsSync(file)) {
    fs.writeFileSync(
      file,
      JSON.stringify(await Promise.all(Array.from({ length: count }, () => freePort()))),
    );
  }
  const ports: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!Array.isArray(ports) || ports.length !== count || !ports.every((p) => Number.isInteger(p))) {
    throw new Error(`${file} does not hold ${count} ports; delete the cluster's directory and start again`);
  }
  return ports as number[];
}

/** Waits for etcd's health endpoint; `alive` throws if the process has exited. */
export function waitForEtcd(clientPort: number, alive: () => void, logFile: string): Promise<void> {
  return waitFor(
    "etcd",
    async () => {
      alive();
      return (await fetch(`http://127.0.0.1:${clientPort}/health`)).ok;
    },
    { timeoutMs: 30_000, intervalMs: 200, describe: () => tail(logFile) },
  );
}

/** Whether the API server has node `nodeName` with its Ready condition True. */
export async function nodeIsReady(server: string, token: string, nodeName: string): Promise<boolean> {
  const res = await kubeRequest(server, token, "GET", `/api/v1/nodes/${nodeName}`);
  if (res.status !== 200) return false;
  const conditions: { type: string; status: string }[] = JSON.parse(res.body).status?.conditions ?? [];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}

/**
 * Waits for the default namespace's ServiceAccount: the controller manager creates it, and pods in
 * a fresh namespace cannot be admitted before their namespace has one.
 */
export function waitForDefaultServiceAccount(
  server: string,
  token: string,
  controllerManagerLog: string,
  intervalMs: number,
): Promise<void> {
  return waitFor(
    "the default ServiceAccount",
    async () =>
      (await kubeRequest(server, token, "GET", "/api/v1/namespaces/default/serviceaccounts/default"))
        .status === 200,
    { timeoutMs: 60_000, intervalMs, describe: () => tail(controllerManagerLog) },
  );
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = path.resolve(opts.dir);
  const logDir = path.join(dir, "logs");
  fs.mkdirSync(logDir, { recursive: true });
  const nodeName = opts.nodeName ?? "kwok-node-0";

  // Credentials survive a stop/start (same cluster); destroy() removes them with the data.
  const saKey = path.join(dir, "sa.key");
  const saPub = path.join(dir, "sa.pub");
  if (!fs.existsSync(saKey)) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    fs.writeFileSync(saKey, privateKey.export({ type: "pkcs1", format: "pem" }), { mode: 0o600 });
    fs.writeFileSync(saPub, publicKey.export({ type: "spki", format: "pem" }));
  }
  const tokenFile = path.join(dir, "tokens.csv");
  if (!fs.existsSync(tokenFile)) {
    fs.writeFileSync(tokenFile, `${crypto.randomBytes(24).toString("hex")},admin,admin,"system:masters"\n`, {
      mode: 0o600,
    });
  }
  const tokenCsv = fs.readFileSync(tokenFile, "utf8");
  const token = tokenCsv.slice(0, tokenCsv.indexOf(","));

  const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = (await persistentPorts(
    path.join(dir, "ports.json"),
    6,
  )) as [number, number, number, number, number, number];
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = kubeconfigYaml(server, token);
  const kubeconfigPath = path.join(dir, "kubeconfig.yaml");
  fs.writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });

  const procs: ManagedProcess[] = [];
  const env = { ...process.env };
  const start = (name: string, bin: string, args: string[]) => {
    const p = startProcess(name, binary(bin), args, { logDir, env, detach: opts.detach });
    procs.push(p);
    return p;
  };
  const stopAll = async () => {
    for (const p of [...procs].reverse()) await p.stop();
    procs.length = 0;
  };
  const ensureRunning = (p: ManagedProcess) => {
    if (p.child.exitCode !== null)
      throw new Error(`${p.name} exited with code ${p.child.exitCode}:\n${tail(p.logFile)}`);
  };

  try {
    const etcd = start("etcd", "etcd", etcdArgs(dir, etcdClient, etcdPeer));
    await waitForEtcd(etcdClient, () => ensureRunning(etcd), etcd.logFile);

    const apiserver = start("kube-apiserver", "kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${path.join(dir, "pki")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--token-auth-file=${tokenFile}`,
      "--authorization-mode=RBAC",
      "--allow-privileged=true",
      "--enable-priority-and-fairness=false",
      "--endpoint-reconciler-type=none",
      "--v=0",
    ]);
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        ensureRunning(apiserver);
        return (await kubeRequest(server, token, "GET", "/readyz")).status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 200, describe: () => tail(apiserver.logFile) },
    );

    start("kube-controller-manager", "kube-controller-manager", [
      `--kubeconfig=${kubeconfigPath}`,
      "--leader-elect=false",
      `--service-account-private-key-file=${saKey}`,
      `--root-ca-file=${path.join(dir, "pki", "apiserver.crt")}`,
      "--use-service-account-credentials=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${kcmPort}`,
      "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller",
      "--v=0",
    ]);
    start("kube-scheduler", "kube-scheduler", [
      `--kubeconfig=${kubeconfigPath}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${schedPort}`,
      "--v=0",
    ]);
    start("kwok", "kwok", [
      `--kubeconfig=${kubeconfigPath}`,
      `--config=${path.join(path.dirname(binary("kwok")), "..", "share", "kwok-stages.yaml")}`,
      "--manage-all-nodes=false",
      `--manage-nodes-with-annotation-selector=${FAKE_NODE_ANNOTATION}=fake`,
      "--manage-nodes-with-label-selector=",
      "--manage-single-node=",
      "--cidr=10.244.0.0/16",
      "--node-ip=10.244.0.1",
      `--server-address=127.0.0.1:${kwokPort}`,
      "--node-lease-duration-seconds=40",
    ]);

    const node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: nodeName,
        annotations: { [FAKE_NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
        labels: {
          "kubernetes.io/hostname": nodeName,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          type: "kwok",
        },
      },
      status: {
        allocatable: { cpu: "32", memory: "256Gi", pods: "250" },
        capacity: { cpu: "32", memory: "256Gi", pods: "250" },
      },
    };
    const created = await kubeRequest(server, token, "POST", "/api/v1/nodes", node);
    if (created.status !== 201 && created.status !== 409) {
      throw new Error(`creating the fake node failed (${created.status}): ${created.body}`);
    }
    await waitFor(
      `node ${nodeName} Ready (kwok)`,
      async () => {
        for (const p of procs) ensureRunning(p);
        return nodeIsReady(server, token, nodeName);
      },
      { timeoutMs: 60_000, intervalMs: 200, describe: () => tail(path.join(logDir, "kwok.log")) },
    );
    await waitForDefaultServiceAccount(server, token, path.join(logDir, "kube-controller-manager.log"), 200);
  } catch (err) {
    await stopAll();
    throw err;
  }

  fs.writeFileSync(path.join(dir, "pids.json"), JSON.stringify(procs.map((p) => p.child.pid)));

  return {
    dir,
    server,
    token,
    kubeconfig,
    kubeconfigPath,
    stop: stopAll,
    async destroy() {
      await stopAll();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
