import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  etcdArgs,
  kubeconfigYaml,
  kubeRequest,
  nodeIsReady,
  persistentPorts,
  waitForDefaultServiceAccount,
  waitForEtcd,
} from "./controlPlane";
import {
  checkHost,
  ensureGuard,
  ensureNodeAddress,
  exec,
  execAsync,
  iptablesLeftovers,
  KUBELET_DEVICE_PLUGIN_SOCKET,
  killPids,
  linkExists,
  mountsUnder,
  netnsLeft,
  podNetnsOnBridge,
  removeContainerLogLinks,
  removeIptablesState,
  removeLink,
  removeNetns,
  removePodCgroups,
  removeStaleKubeletSocket,
  setSysctl,
  shimPids,
  staleKubeletSocket,
  unmountUnder,
} from "./nodeHost";
import { certKubeconfig, ensurePki } from "./pki";
import { alive, type ManagedProcess, startProcess, stopProcessGroups, tail, waitFor } from "./processes";

/**
 * A one-node Kubernetes cluster whose node is real: a kubelet on this host runs pods in a
 * private containerd (runc, CNI bridge), kube-proxy programs Services in iptables, CoreDNS
 * answers cluster names. Pods, probes, volumes, security contexts and Service DNS all execute.
 *
 * Everything binds to an address this harness adds (a /32 on a link of its own), and a
 * firewall guard rejects anything a pod would send off the pod network, so no cluster traffic
 * leaves the machine. One such cluster runs per host at a time (fixed node address, bridge,
 * iptables chains): a lock file serialises test runs.
 */
export interface RealCluster {
  readonly dir: string;
  readonly nodeName: string;
  /** The node's address: API server, kubelet, CoreDNS. Pods reach host services bound to it. */
  readonly nodeIp: string;
  readonly server: string;
  /** Bearer token of a cluster admin (for the `kubeRequest` helpers and Pulumi). */
  readonly token: string;
  /** A self-contained kubeconfig (CA inline, bearer token): Pulumi's `kubeconfig` config value. */
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  /** The StorageClass the harness provisions local volumes for (the default class). */
  readonly storageClass: string;
  /** Imports a `docker save` tarball into the node's containerd (skipped when its tags are there). */
  importImage(tar: string): Promise<void>;
  /** Image references in the node's containerd. */
  images(): Promise<string[]>;
  /** Runs kubectl against the cluster as admin; returns stdout. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Stops every process, removes every pod and all host state; data stays in `dir`. */
  stop(): Promise<void>;
  /** `stop()`, then deletes the cluster's data (etcd, containers, images, volumes). */
  destroy(): Promise<void>;
  /**
   * The whole cluster lost, and a fresh one in its place: `destroy()` (every pod and container,
   * etcd's data, the volumes, the certificates and the admin token), then a new cluster in the
   * same directory, at the same node address and API server URL, with new credentials. The host
   * lock is kept throughout, so no other run takes the node in between. This object is stopped
   * afterwards; use the one returned.
   */
  recreate(): Promise<RealCluster>;
  /**
   * Lets this process exit with the cluster running (`npm run demo -- --keep`): its processes
   * outlive this one, the host lock passes to kube-apiserver's pid (a later run takes the node
   * over, cleaning up, only once that is gone), and the volume provisioner stops (claims already
   * bound keep their volumes). Returns what `removeKeptCluster` needs to remove it later.
   */
  handOver(): Promise<KeptCluster>;
}

/** A real node no process manages any more: what a later process needs to remove it. */
export interface KeptCluster {
  dir: string;
  /** Its processes (each leads a process group): etcd, the API server, kubelet, containerd, ... */
  pids: number[];
  /** The sysctls it changed, with the values to put back. */
  sysctls: Record<string, string>;
}

export interface RealClusterOptions {
  /** Working directory for data, certificates, configs and logs; created if missing. */
  dir: string;
  /** The pause image every pod sandbox runs: its tag and a `docker save` tarball. */
  sandboxImage: { tag: string; tar: string };
  nodeName?: string;
}

/** Fixed per host (hence the lock): the node address, links, and the cluster's address ranges. */
export const NODE_IP = "10.250.0.1";
const NODE_LINK = "obol-node0";
const POD_BRIDGE = "obol-cni0";
const POD_CIDR = "10.244.0.0/16";
const NODE_POD_CIDR = "10.244.0.0/24";
const SERVICE_CIDR = "10.96.0.0/16";
const DNS_IP = "10.96.0.10";
const API_PORT = 6443;
const STORAGE_CLASS = "obol-local";
const PROVISIONER = "obol.test/local-dir";
const LOCK_FILE = "/run/obol-stack-realnode.lock";
const BRIDGE_NF = "net.bridge.bridge-nf-call-iptables";

/** A pinned tool on PATH (scripts/with-tools puts the toolchain there), or a clear error. */
export function binary(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  throw new Error(
    `${name} is not on PATH: build the toolchain with \`npm run tools\` (it builds the real node's tools too) and run tests through npm scripts`,
  );
}

const NODE_BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kube-proxy",
  "kubectl",
  "containerd",
  "containerd-shim-runc-v2",
  "ctr",
  "crictl",
  "coredns",
] as const;

type NodeBinary = (typeof NODE_BINARIES)[number];

// ---- the host lock ---------------------------------------------------------------------------

interface LockHolder {
  pid: number;
  dir: string;
}

/**
 * Takes the host lock, waiting for another test run's cluster to finish. A lock whose process
 * died is taken over after cleaning up the host state that run left behind.
 */
async function acquireLock(dir: string, timeoutMs: number, held = false): Promise<void> {
  if (held && lockHolder()?.pid === process.pid) {
    fs.writeFileSync(LOCK_FILE, JSON.stringify({ pid: process.pid, dir } satisfies LockHolder));
    return;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fs.writeFileSync(LOCK_FILE, JSON.stringify({ pid: process.pid, dir } satisfies LockHolder), {
        flag: "wx",
      });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = lockHolder();
    if (holder && holder.pid !== process.pid && !alive(holder.pid)) {
      await cleanHost(holder.dir);
      fs.rmSync(LOCK_FILE, { force: true });
      continue;
    }
    if (holder?.pid === process.pid) {
      throw new Error(`a real cluster is already running in this process (${holder.dir}): stop it first`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `another test run (pid ${holder?.pid}, ${holder?.dir}) holds the real-cluster lock ${LOCK_FILE}; only one real node runs per host`,
      );
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function lockHolder(): LockHolder | undefined {
  try {
    return JSON.parse(fs.readFileSync(LOCK_FILE, "utf8")) as LockHolder;
  } catch {
    return undefined; // none, or being written or removed right now
  }
}

function releaseLock(): void {
  if (lockHolder()?.pid === process.pid) fs.rmSync(LOCK_FILE, { force: true });
}

// ---- configuration files ---------------------------------------------------------------------

interface Layout {
  dir: string;
  etc: string;
  logs: string;
  containerdRoot: string;
  containerdState: string;
  socket: string;
  kubeletRoot: string;
  podLogs: string;
  volumes: string;
}

function layout(dir: string): Layout {
  return {
    dir,
    etc: path.join(dir, "etc"),
    logs: path.join(dir, "logs"),
    containerdRoot: path.join(dir, "containerd"),
    // containerd's state holds its socket, whose path must stay under 108 bytes.
    containerdState: path.join(
      "/run",
      `obol-realnode-${crypto.createHash("sha256").update(dir).digest("hex").slice(0, 8)}`,
    ),
    socket: "",
    kubeletRoot: path.join(dir, "kubelet"),
    podLogs: path.join(dir, "pod-logs"),
    volumes: path.join(dir, "volumes"),
  };
}

function withSocket(l: Layout): Layout {
  return { ...l, socket: path.join(l.containerdState, "containerd.sock") };
}

function containerdToml(l: Layout, sandboxImage: string): string {
  return `# containerd 2.x dedicated to the test node: own root, state and socket (dockerd's is untouched).
version = 3
root = "${l.containerdRoot}"
state = "${l.containerdState}"
# This machine may lack CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
oom_score = 0

[grpc]
  address = "${l.socket}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${sandboxImage}'

[plugins.'io.containerd.cri.v1.runtime']
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  # The kubelet asks -998 for sandboxes: clamp to containerd's own score instead of failing.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '${path.join(l.etc, "cni")}'
`;
}

function cniConflist(l: Layout): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "obol-realnode",
      plugins: [
        {
          type: "bridge",
          bridge: POD_BRIDGE,
          isGateway: true,
          // Pods never talk to anything off this host, so there is nothing to masquerade.
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: NODE_POD_CIDR, gateway: "10.244.0.1" }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: path.join(l.dir, "cni-ipam"),
          },
        },
        // dockerd sets FORWARD's policy to DROP; this plugin accepts each pod's traffic.
        { type: "firewall", backend: "iptables" },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(l: Layout, pkiDir: string, healthzPort: number): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Kubernetes >= 1.35 refuses cgroup v1 hosts unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${l.socket}
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pkiDir}/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: ${pkiDir}/kubelet.crt
tlsPrivateKeyFile: ${pkiDir}/kubelet.key
clusterDomain: cluster.local
clusterDNS: [${DNS_IP}]
# Pods resolve cluster names only: nothing of the host's resolver configuration leaks in.
resolvConf: ""
podLogsDir: ${l.podLogs}
# The machine may lack CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
oomScoreAdj: 0
failSwapOn: false
hairpinMode: hairpin-veth
serializeImagePulls: false
# Images are imported, never pulled: image GC must not delete them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 60
`;
}

function kubeProxyConfig(kubeconfig: string, metricsPort: number, healthzPort: number): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${kubeconfig}}
mode: iptables
clusterCIDR: ${POD_CIDR}
nodePortAddresses: ["${NODE_IP}/32"]
metricsBindAddress: 127.0.0.1:${metricsPort}
healthzBindAddress: 127.0.0.1:${healthzPort}
iptables: {localhostNodePorts: false}
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
`;
}

function corefile(kubeconfig: string, healthPort: number, readyPort: number): string {
  // No `forward`: names outside the cluster do not resolve, so no query leaves the machine.
  return `.:53 {
    bind ${NODE_IP}
    errors
    health 127.0.0.1:${healthPort}
    ready 127.0.0.1:${readyPort}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig} realnode
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
`;
}

/** Cluster DNS on the host, reached through the conventional Service kube-dns (10.96.0.10). */
function clusterAddons(nodeName: string): unknown[] {
  return [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
      spec: {
        clusterIP: DNS_IP,
        ports: [
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
          { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
        ],
      },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: "kube-dns-host",
        namespace: "kube-system",
        labels: {
          "kubernetes.io/service-name": "kube-dns",
          "endpointslice.kubernetes.io/managed-by": "obol-realnode",
        },
      },
      addressType: "IPv4",
      endpoints: [{ addresses: [NODE_IP], conditions: { ready: true }, nodeName }],
      ports: [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "dns-tcp", port: 53, protocol: "TCP" },
      ],
    },
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: {
        name: STORAGE_CLASS,
        annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
      },
      provisioner: PROVISIONER,
      reclaimPolicy: "Delete",
      // Like k3d's local-path: the claim binds once its pod is scheduled.
      volumeBindingMode: "WaitForFirstConsumer",
    },
  ];
}

// ---- the cluster -----------------------------------------------------------------------------

interface Stoppable {
  stop(): Promise<void>;
}

export async function startRealCluster(
  opts: RealClusterOptions,
  /** Set by `recreate()`: this process already holds the host lock. */
  lockHeld = false,
): Promise<RealCluster> {
  checkHost();
  const bins = Object.fromEntries(NODE_BINARIES.map((b) => [b, binary(b)])) as Record<NodeBinary, string>;
  const dir = path.resolve(opts.dir);
  const nodeName = opts.nodeName ?? "realnode-0";
  const l = withSocket(layout(dir));
  fs.mkdirSync(l.logs, { recursive: true });
  fs.mkdirSync(path.join(l.etc, "cni"), { recursive: true });
  fs.mkdirSync(l.volumes, { recursive: true });
  await acquireLock(dir, 30 * 60_000, lockHeld);

  const procs: ManagedProcess[] = [];
  const loops: Stoppable[] = [];
  let forwardBefore: string | undefined;
  let bridgeNfBefore: string | undefined;
  const sysctlsBefore = (): Record<string, string> => ({
    ...(forwardBefore !== undefined ? { "net.ipv4.ip_forward": forwardBefore } : {}),
    ...(bridgeNfBefore !== undefined ? { [BRIDGE_NF]: bridgeNfBefore } : {}),
  });
  const env = {
    ...process.env,
    // containerd finds its runc shim on PATH: the one built with it, before Debian's.
    PATH: `${path.dirname(bins.containerd)}:${process.env.PATH}:/usr/sbin:/sbin`,
  };
  const start = (name: NodeBinary, args: string[]) => {
    const p = startProcess(name, bins[name], args, { logDir: l.logs, env });
    procs.push(p);
    return p;
  };
  const ensureRunning = () => {
    for (const p of procs) {
      if (p.child.exitCode !== null) {
        throw new Error(`${p.name} exited with code ${p.child.exitCode}:\n${tail(p.logFile)}`);
      }
    }
  };
  const byName = (name: string) => procs.find((p) => p.name === name);

  const teardown = async (keepLock = false) => {
    for (const loop of loops) await loop.stop();
    loops.length = 0;
    // Nothing may recreate pods while they are removed.
    for (const name of ["kube-controller-manager", "kube-scheduler", "kubelet"]) await byName(name)?.stop();
    if (fs.existsSync(l.socket)) {
      // Through the CRI: stops containers, runs CNI DEL, unmounts and deletes each sandbox.
      try {
        exec(bins.crictl, ["-r", `unix://${l.socket}`, "rmp", "--all", "--force"]);
      } catch {
        // what is left is removed below
      }
    }
    await byName("containerd")?.stop(15_000);
    killPids(shimPids(l.socket));
    await byName("coredns")?.stop();
    await byName("kube-proxy")?.stop();
    await byName("kube-apiserver")?.stop();
    await byName("etcd")?.stop();
    procs.length = 0;
    await cleanHost(dir);
    for (const [key, value] of Object.entries(sysctlsBefore())) setSysctl(key, value);
    if (!keepLock) releaseLock();
  };
  const deleteData = () => {
    const left = mountsUnder(dir);
    // Never delete through a bind mount: it would reach the data it points at.
    if (left.length > 0) throw new Error(`mounts remain under ${dir}, not deleting it:\n${left.join("\n")}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(l.containerdState, { recursive: true, force: true });
  };

  try {
    // Host: the node's address, the guard, and forwarding (Service traffic between pods is routed).
    ensureNodeAddress(NODE_LINK, NODE_IP);
    ensureGuard(POD_CIDR, SERVICE_CIDR, POD_BRIDGE);
    forwardBefore = setSysctl("net.ipv4.ip_forward", "1");
    // A pod's reply to another pod that reached it through a Service IP is bridged, not routed:
    // without bridge netfilter it skips conntrack, is not translated back to the Service IP,
    // and the client's connection hangs. dockerd usually turns this on; not every host has it.
    if (!fs.existsSync(`/proc/sys/${BRIDGE_NF.replace(/\./g, "/")}`)) {
      throw new Error(
        "bridge netfilter is not loaded (Service traffic between pods needs it): run `modprobe br_netfilter`",
      );
    }
    bridgeNfBefore = setSysctl(BRIDGE_NF, "1");

    const pki = ensurePki(path.join(dir, "pki"), { name: nodeName, ip: NODE_IP });
    const server = `https://${NODE_IP}:${API_PORT}`;
    const kubeconfigs = Object.fromEntries(
      ["admin", "kubelet", "kube-proxy", "controller-manager", "scheduler", "coredns"].map((who) => {
        const file = path.join(l.etc, `${who}.kubeconfig`);
        fs.writeFileSync(file, certKubeconfig(pki, server, who), { mode: 0o600 });
        return [who, file];
      }),
    ) as Record<"admin" | "kubelet" | "kube-proxy" | "controller-manager" | "scheduler" | "coredns", string>;
    const tokenFile = path.join(l.etc, "tokens.csv");
    if (!fs.existsSync(tokenFile)) {
      fs.writeFileSync(
        tokenFile,
        `${crypto.randomBytes(24).toString("hex")},admin,admin,"system:masters"\n`,
        {
          mode: 0o600,
        },
      );
    }
    const token = fs.readFileSync(tokenFile, "utf8").split(",")[0] ?? "";
    const kubeconfig = kubeconfigYaml(server, token, "obol-realnode").replace(
      "    insecure-skip-tls-verify: true",
      `    certificate-authority-data: ${fs.readFileSync(pki.caCert).toString("base64")}`,
    );
    const kubeconfigPath = path.join(dir, "kubeconfig.yaml");
    fs.writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });

    const [
      etcdClient,
      etcdPeer,
      kcmPort,
      schedPort,
      kubeletHealthz,
      proxyMetrics,
      proxyHealthz,
      dnsHealth,
      dnsReady,
    ] = (await persistentPorts(path.join(dir, "ports.json"), 9)) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];

    const files = {
      containerd: path.join(l.etc, "containerd.toml"),
      kubelet: path.join(l.etc, "kubelet-config.yaml"),
      kubeProxy: path.join(l.etc, "kube-proxy-config.yaml"),
      corefile: path.join(l.etc, "Corefile"),
    };
    fs.writeFileSync(files.containerd, containerdToml(l, normalizeRef(opts.sandboxImage.tag)));
    fs.writeFileSync(path.join(l.etc, "cni", "10-obol-realnode.conflist"), cniConflist(l));
    fs.writeFileSync(files.kubelet, kubeletConfig(l, pki.dir, kubeletHealthz));
    fs.writeFileSync(files.kubeProxy, kubeProxyConfig(kubeconfigs["kube-proxy"], proxyMetrics, proxyHealthz));
    fs.writeFileSync(files.corefile, corefile(kubeconfigs.coredns, dnsHealth, dnsReady));

    // 1. containerd, and the sandbox image (no registry: every image is imported).
    fs.mkdirSync(l.containerdState, { recursive: true });
    start("containerd", ["--config", files.containerd]);
    const ctr = (args: string[]) => execAsync(bins.ctr, ["-a", l.socket, "-n", "k8s.io", ...args]);
    await waitFor(
      "containerd",
      async () => {
        ensureRunning();
        await ctr(["version"]);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: () => tail(path.join(l.logs, "containerd.log")) },
    );
    const images = async () => (await ctr(["images", "ls", "-q"])).split("\n").filter((s) => s.length > 0);
    const importImage = async (tar: string) => {
      const wanted = tarTags(tar);
      const have = new Set(await images());
      if (wanted.length > 0 && wanted.every((t) => have.has(t))) return;
      await ctr(["images", "import", tar]);
      const after = new Set(await images());
      const missing = wanted.filter((t) => !after.has(t));
      if (missing.length > 0) throw new Error(`importing ${tar} did not produce ${missing.join(", ")}`);
    };
    await importImage(opts.sandboxImage.tar);

    // 2. etcd and the API server (on the node address: pods reach it through Service `kubernetes`).
    start("etcd", etcdArgs(dir, etcdClient, etcdPeer));
    await waitForEtcd(etcdClient, ensureRunning, path.join(l.logs, "etcd.log"));
    const apiClient = pki.cert("apiserver-kubelet-client");
    const serving = pki.cert("apiserver");
    start("kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--bind-address=${NODE_IP}`,
      `--advertise-address=${NODE_IP}`,
      `--secure-port=${API_PORT}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.caCert}`,
      `--token-auth-file=${tokenFile}`,
      `--kubelet-client-certificate=${apiClient.cert}`,
      `--kubelet-client-key=${apiClient.key}`,
      `--kubelet-certificate-authority=${pki.caCert}`,
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--allow-privileged=true",
      "--enable-priority-and-fairness=false",
      "--v=0",
    ]);
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        ensureRunning();
        return (await kubeRequest(server, token, "GET", "/readyz")).status === 200;
      },
      { timeoutMs: 90_000, intervalMs: 250, describe: () => tail(path.join(l.logs, "kube-apiserver.log")) },
    );

    // 3. Controllers, scheduler, the node, Service routing and DNS.
    start("kube-controller-manager", [
      `--kubeconfig=${kubeconfigs["controller-manager"]}`,
      `--authentication-kubeconfig=${kubeconfigs["controller-manager"]}`,
      `--authorization-kubeconfig=${kubeconfigs["controller-manager"]}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${kcmPort}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      "--use-service-account-credentials=true",
      "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller",
      "--v=0",
    ]);
    start("kube-scheduler", [
      `--kubeconfig=${kubeconfigs.scheduler}`,
      `--authentication-kubeconfig=${kubeconfigs.scheduler}`,
      `--authorization-kubeconfig=${kubeconfigs.scheduler}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${schedPort}`,
      "--v=0",
    ]);
    start("kubelet", [
      `--config=${files.kubelet}`,
      `--kubeconfig=${kubeconfigs.kubelet}`,
      `--hostname-override=${nodeName}`,
      `--node-ip=${NODE_IP}`,
      `--root-dir=${l.kubeletRoot}`,
      "--v=1",
    ]);
    start("kube-proxy", [`--config=${files.kubeProxy}`, `--hostname-override=${nodeName}`, "--v=1"]);
    start("coredns", ["-conf", files.corefile]);

    const kubectl = (args: string[], input?: string) =>
      execAsync(bins.kubectl, [`--kubeconfig=${kubeconfigs.admin}`, ...args], input);
    await waitFor(
      `node ${nodeName} Ready`,
      async () => {
        ensureRunning();
        return nodeIsReady(server, token, nodeName);
      },
      { timeoutMs: 120_000, intervalMs: 250, describe: () => tail(path.join(l.logs, "kubelet.log")) },
    );
    await kubectl(
      ["apply", "--server-side", "--force-conflicts", "-f", "-"],
      clusterAddons(nodeName)
        .map((o) => JSON.stringify(o))
        .join("\n"),
    );
    await waitForDefaultServiceAccount(server, token, path.join(l.logs, "kube-controller-manager.log"), 250);
    await waitFor(
      "CoreDNS ready",
      async () => {
        ensureRunning();
        return (await fetch(`http://127.0.0.1:${dnsReady}/ready`)).ok;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: () => tail(path.join(l.logs, "coredns.log")) },
    );
    loops.push(
      startLocalProvisioner({
        server,
        token,
        nodeName,
        volumesDir: l.volumes,
        logFile: path.join(l.logs, "provisioner.log"),
      }),
    );

    let stopped = false;
    const cluster: RealCluster = {
      dir,
      nodeName,
      nodeIp: NODE_IP,
      server,
      token,
      kubeconfig,
      kubeconfigPath,
      storageClass: STORAGE_CLASS,
      importImage,
      images,
      kubectl,
      async stop() {
        if (stopped) return;
        stopped = true;
        await teardown();
      },
      async destroy() {
        await cluster.stop();
        deleteData();
      },
      async recreate() {
        if (stopped) throw new Error(`the cluster in ${dir} was stopped: start a new one instead`);
        stopped = true;
        try {
          await teardown(true);
          // The lost cluster's process logs stay beside the new one's, for a failure to explain.
          const lostLogs = `${dir}.lost-${Date.now()}`;
          fs.mkdirSync(lostLogs, { recursive: true });
          fs.renameSync(l.logs, path.join(lostLogs, "logs"));
          deleteData();
        } catch (err) {
          releaseLock();
          throw err;
        }
        return startRealCluster({ ...opts, dir, nodeName }, true);
      },
      async handOver() {
        if (stopped) throw new Error(`the cluster in ${dir} was stopped: nothing to hand over`);
        stopped = true;
        for (const loop of loops) await loop.stop();
        loops.length = 0;
        const pids = procs.map((p) => p.handOver());
        const apiserver = byName("kube-apiserver")?.child.pid;
        if (lockHolder()?.pid === process.pid && apiserver)
          fs.writeFileSync(LOCK_FILE, JSON.stringify({ pid: apiserver, dir } satisfies LockHolder));
        return { dir, pids, sysctls: sysctlsBefore() };
      },
    };
    return cluster;
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}

/**
 * Waits for a run-once pod to finish and returns its log; a pod that failed throws at once
 * with its log (the reason), instead of waiting out the timeout.
 */
export async function finishedPodLog(
  cluster: RealCluster,
  namespace: string,
  name: string,
  timeoutMs = 120_000,
): Promise<string> {
  let phase = "";
  await waitFor(
    `pod ${namespace}/${name} to finish`,
    async () => {
      phase = await cluster.kubectl(["-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}"]);
      return phase === "Succeeded" || phase === "Failed";
    },
    {
      timeoutMs,
      intervalMs: 500,
      describe: () => `(last phase: ${phase || "unknown"})`,
    },
  );
  const log = await cluster.kubectl(["-n", namespace, "logs", name]);
  if (phase === "Failed") throw new Error(`pod ${namespace}/${name} failed:\n${log}`);
  return log;
}

/**
 * Removes a kept real node (`handOver`), from another process: its processes by pid (SIGTERM to
 * each process group, SIGKILL after 15 s), then what they leave on the host (sandboxes' shims,
 * mounts, the bridge and the node's link, iptables chains), the sysctls put back, the host lock
 * and its data. While another live run holds the node (it took over after the kept one's API
 * server died), the links, chains and sysctls are that run's: only what is this node's own goes.
 */
export async function removeKeptCluster(kept: KeptCluster): Promise<void> {
  const holder = lockHolder();
  const hostIsOurs = !holder || holder.dir === kept.dir || !alive(holder.pid);
  const l = withSocket(layout(kept.dir));
  // As the node's own teardown does: first what would recreate pods, then the pods through the
  // CRI (CNI DEL takes each pod's veth and network namespace), then the rest.
  const recreators = new Set(["kube-controller-manager", "kube-scheduler", "kubelet"]);
  await stopProcessGroups(kept.pids.filter((pid) => recreators.has(processName(pid))));
  removePodsThroughCri(l.socket);
  const podNetns = hostIsOurs ? podNetnsOnBridge(POD_BRIDGE) : [];
  await stopProcessGroups(kept.pids);
  if (hostIsOurs) {
    await cleanHost(kept.dir);
    for (const [key, value] of Object.entries(kept.sysctls)) setSysctl(key, value);
    if (holder?.dir === kept.dir) fs.rmSync(LOCK_FILE, { force: true });
  } else {
    killPids(shimPids(l.socket));
    unmountUnder(kept.dir);
    unmountUnder(l.containerdState);
  }
  const left = mountsUnder(kept.dir);
  if (left.length > 0)
    throw new Error(`mounts remain under ${kept.dir}, not deleting it:\n${left.join("\n")}`);
  fs.rmSync(kept.dir, { recursive: true, force: true });
  fs.rmSync(l.containerdState, { recursive: true, force: true });
  const netns = netnsLeft(podNetns);
  if (netns.length > 0) throw new Error(`pods' network namespaces remain: ${netns.join(", ")}`);
}

/** The program a process runs (its argv[0]'s base name), or "" once it is gone. */
function processName(pid: number): string {
  try {
    return path.basename(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "");
  } catch {
    return "";
  }
}

/**
 * Stops and removes every pod sandbox through the node's containerd (CRI), which runs CNI DEL
 * for each: its veth, address and network namespace go. Best effort: with containerd gone,
 * `cleanHost` removes what it can find.
 */
function removePodsThroughCri(socket: string): void {
  if (!fs.existsSync(socket)) return;
  try {
    exec(binary("crictl"), ["-r", `unix://${socket}`, "--timeout", "60s", "rmp", "--all", "--force"]);
  } catch {
    // what is left is removed by cleanHost
  }
}

/**
 * What of a real node in `dir` is still on the host, one line each (empty once it is all gone):
 * sandboxes' shims, mounts, the node's link and the pod bridge, iptables chains and guard rules.
 * The links and chains are per host, so they count only while no other live run holds the node.
 */
export function realNodeLeftovers(dir: string): string[] {
  const l = withSocket(layout(path.resolve(dir)));
  const holder = lockHolder();
  const hostIsOurs = !holder || holder.dir === l.dir || !alive(holder.pid);
  return [
    ...shimPids(l.socket).map((pid) => `containerd shim, pid ${pid}`),
    ...mountsUnder(l.dir).map((m) => `mount ${m}`),
    ...mountsUnder(l.containerdState).map((m) => `mount ${m}`),
    ...(fs.existsSync(l.containerdState) ? [`containerd state ${l.containerdState}`] : []),
    ...(hostIsOurs
      ? [
          ...[NODE_LINK, POD_BRIDGE].filter(linkExists).map((link) => `network link ${link}`),
          ...iptablesLeftovers(),
          ...(staleKubeletSocket()
            ? [`the kubelet's device-plugin socket ${KUBELET_DEVICE_PLUGIN_SOCKET}`]
            : []),
        ]
      : []),
  ];
}

/**
 * Removes what a real node leaves on the host after its processes are gone (or after a run
 * that crashed): leftover sandboxes' shims, mounts, links, iptables chains, log links.
 */
async function cleanHost(dir: string): Promise<void> {
  const l = withSocket(layout(dir));
  // Pods the CRI did not remove (a crashed run) keep their network namespaces (a bind mount
  // under /run/netns holds each, with its veth): the pod bridge's veths say which are ours.
  const podNetns = podNetnsOnBridge(POD_BRIDGE);
  killPids(shimPids(l.socket));
  removePodCgroups();
  unmountUnder(dir);
  unmountUnder(l.containerdState);
  removeNetns(podNetns);
  removeStaleContainerdState();
  removeLink(POD_BRIDGE);
  removeLink(NODE_LINK);
  removeIptablesState();
  removeContainerLogLinks(l.podLogs);
  removeStaleKubeletSocket();
}

/**
 * containerd's runtime state directories (`/run/obol-realnode-<hash>`) of nodes that are gone:
 * one per run directory, so a crashed run's stays until here. The host is this run's (the lock),
 * so no live node uses them; one with a mount or a live shim left is kept.
 */
function removeStaleContainerdState(): void {
  for (const name of fs.readdirSync("/run")) {
    if (!name.startsWith("obol-realnode-")) continue;
    const state = path.join("/run", name);
    if (mountsUnder(state).length > 0 || shimPids(path.join(state, "containerd.sock")).length > 0) continue;
    fs.rmSync(state, { recursive: true, force: true });
  }
}

/** The image references a `docker save` tarball carries (repositories / index annotations). */
function tarTags(tar: string): string[] {
  let manifest: string;
  try {
    const entry = exec("tar", ["-tf", tar])
      .split("\n")
      .find((e) => /^(\.\/)?manifest\.json$/.test(e));
    if (!entry) return [];
    manifest = exec("tar", ["-xOf", tar, entry]);
  } catch {
    return [];
  }
  const entries: { RepoTags?: string[] }[] = JSON.parse(manifest);
  return entries.flatMap((e) => e.RepoTags ?? []).map(normalizeRef);
}

/** containerd names images fully: `local/pause:3.10` is `docker.io/local/pause:3.10`. */
export function normalizeRef(ref: string): string {
  const first = ref.split("/")[0] ?? "";
  const hasRegistry =
    ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const named = hasRegistry ? ref : `docker.io/${ref.includes("/") ? ref : `library/${ref}`}`;
  return /:[^/]+$/.test(named) || named.includes("@") ? named : `${named}:latest`;
}

// ---- local volumes ---------------------------------------------------------------------------

interface Claim {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: {
    storageClassName?: string;
    resources?: { requests?: { storage?: string } };
    accessModes?: string[];
  };
  status?: { phase?: string };
}

interface Volume {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { local?: { path: string } };
  status?: { phase?: string };
}

/**
 * A minimal dynamic provisioner for the `obol-local` StorageClass: a claim whose pod has been
 * scheduled (the scheduler names the node) gets a `local` PersistentVolume on a directory of
 * its own; a released volume is deleted with its directory (reclaim policy Delete).
 */
function startLocalProvisioner(opts: {
  server: string;
  token: string;
  nodeName: string;
  volumesDir: string;
  logFile: string;
}): Stoppable {
  const { server, token } = opts;
  const log = (msg: string) => fs.appendFileSync(opts.logFile, `${new Date().toISOString()} ${msg}\n`);
  let running = true;
  const tick = async () => {
    const claims = await kubeRequest(server, token, "GET", "/api/v1/persistentvolumeclaims");
    for (const c of (JSON.parse(claims.body).items ?? []) as Claim[]) {
      const selected = c.metadata.annotations?.["volume.kubernetes.io/selected-node"];
      if (c.spec.storageClassName !== STORAGE_CLASS || c.status?.phase !== "Pending" || !selected) continue;
      const name = `pvc-${c.metadata.uid}`;
      const dir = path.join(opts.volumesDir, name);
      // Group-writable with the setgid bit: the pod's fsGroup owns what it writes.
      fs.mkdirSync(dir, { recursive: true, mode: 0o2777 });
      fs.chmodSync(dir, 0o2777);
      const created = await kubeRequest(server, token, "POST", "/api/v1/persistentvolumes", {
        apiVersion: "v1",
        kind: "PersistentVolume",
        metadata: {
          name,
          labels: { "obol.test/provisioned": "true" },
          annotations: { "pv.kubernetes.io/provisioned-by": PROVISIONER },
        },
        spec: {
          capacity: { storage: c.spec.resources?.requests?.storage ?? "1Gi" },
          accessModes: c.spec.accessModes ?? ["ReadWriteOnce"],
          persistentVolumeReclaimPolicy: "Delete",
          storageClassName: STORAGE_CLASS,
          claimRef: { namespace: c.metadata.namespace, name: c.metadata.name, uid: c.metadata.uid },
          local: { path: dir },
          nodeAffinity: {
            required: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [selected] }] },
              ],
            },
          },
        },
      });
      if (created.status === 201) log(`provisioned ${name} for ${c.metadata.namespace}/${c.metadata.name}`);
      else if (created.status !== 409) log(`creating ${name} failed (${created.status}): ${created.body}`);
    }
    const volumes = await kubeRequest(
      server,
      token,
      "GET",
      "/api/v1/persistentvolumes?labelSelector=obol.test%2Fprovisioned%3Dtrue",
    );
    for (const v of (JSON.parse(volumes.body).items ?? []) as Volume[]) {
      if (v.status?.phase !== "Released") continue;
      const res = await kubeRequest(server, token, "DELETE", `/api/v1/persistentvolumes/${v.metadata.name}`);
      if (res.status === 200 || res.status === 404) {
        if (v.spec.local?.path?.startsWith(`${opts.volumesDir}/`)) {
          fs.rmSync(v.spec.local.path, { recursive: true, force: true });
        }
        log(`deleted released ${v.metadata.name}`);
      }
    }
  };
  const done = (async () => {
    while (running) {
      await tick().catch((err) => log(`provisioner: ${err}`));
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
    },
  };
}
