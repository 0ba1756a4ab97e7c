import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The host state a real node needs and must give back: the node's own address, the firewall
 * guard that keeps cluster traffic on this machine, and the clean-up of what the kubelet,
 * the CNI plugins and kube-proxy leave behind (mounts, bridge, iptables chains, runc shims).
 */

/** Comment on every iptables rule this harness adds, so teardown removes exactly those. */
const GUARD = "obol-realnode-guard";

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.out.trim()}`);
  return r.out;
}

/**
 * The node's address: a private /32 on a link of its own that routes nowhere. The API server,
 * kubelet and CoreDNS bind to it; pods reach it through their bridge gateway (it is a local
 * address of this host). This kernel has no `dummy` link type, so the link is a bridge with no
 * ports, which behaves the same: its address is local, and nothing is behind it.
 */
export function ensureNodeAddress(link: string, ip: string): void {
  if (!run("ip", ["link", "show", link]).ok) must("ip", ["link", "add", link, "type", "bridge"]);
  if (!must("ip", ["-4", "addr", "show", "dev", link]).includes(`inet ${ip}/32`)) {
    must("ip", ["addr", "add", `${ip}/32`, "dev", link]);
  }
  must("ip", ["link", "set", link, "up"]);
}

export function removeLink(link: string): void {
  if (linkExists(link)) run("ip", ["link", "del", link]);
}

interface GuardRule {
  chain: string;
  match: string[];
}

/**
 * Nothing a pod sends may be forwarded off the pod network (its own bridge, or the host's
 * addresses, which are INPUT, not FORWARD), and a Service IP kube-proxy has not programmed
 * yet must fail on the host instead of following the default route out of the machine (where
 * a transparent egress proxy would answer it). Programmed Service IPs are DNATed before either
 * rule is reached.
 *
 * The pod rules live in CNI-ADMIN, the chain the CNI firewall plugin runs first for forwarded
 * traffic: the plugin puts its own jump at the top of FORWARD when the first pod starts, and
 * that chain ACCEPTs everything from a pod's address, so a rule lower in FORWARD never sees a
 * pod's packets. The FORWARD copies cover the time before the plugin has run.
 */
function guardRules(podCidr: string, serviceCidr: string, podBridge: string): GuardRule[] {
  const forwarded = [
    ["-s", podCidr, "!", "-d", podCidr],
    ["-d", serviceCidr],
  ];
  return [
    ...forwarded.map((match) => ({ chain: ADMIN_CHAIN, match })),
    ...forwarded.map((match) => ({ chain: "FORWARD", match })),
    { chain: "OUTPUT", match: ["-d", serviceCidr] },
    { chain: "OUTPUT", match: ["-d", podCidr, "!", "-o", podBridge] },
  ];
}

/** The CNI firewall plugin's chain for administrator rules (it creates it, and never flushes it). */
const ADMIN_CHAIN = "CNI-ADMIN";

const ruleArgs = (r: GuardRule) => [...r.match, "-m", "comment", "--comment", GUARD, "-j", "REJECT"];

export function ensureGuard(podCidr: string, serviceCidr: string, podBridge: string): void {
  if (!run("iptables", ["-w", "-n", "-L", ADMIN_CHAIN]).ok) must("iptables", ["-w", "-N", ADMIN_CHAIN]);
  for (const rule of guardRules(podCidr, serviceCidr, podBridge).reverse()) {
    if (!run("iptables", ["-w", "-C", rule.chain, ...ruleArgs(rule)]).ok) {
      must("iptables", ["-w", "-I", rule.chain, "1", ...ruleArgs(rule)]);
    }
  }
}

/**
 * Removes the guard and every KUBE-* / CNI-* chain (kubelet, kube-proxy, bridge, firewall and
 * portmap plugins) with the rules that jump to them. Only one real node runs per host (a lock),
 * so these chains are all ours.
 */
export function removeIptablesState(): void {
  for (const table of ["filter", "nat", "mangle"]) {
    const rules = run("iptables", ["-w", "-t", table, "-S"]).out.split("\n");
    for (const line of rules) {
      const fields = line.split(" ");
      if (fields[0] !== "-A" || /^(CNI|KUBE)-/.test(fields[1] ?? "")) continue;
      if (line.includes(`--comment ${GUARD}`) || / -j (CNI|KUBE)-/.test(line)) {
        // `iptables -S` quotes comments with spaces; ours has none, and the jump rules keep
        // their exact arguments, so the line can be replayed as a delete.
        run("iptables", ["-w", "-t", table, "-D", ...splitRule(line.slice(3))]);
      }
    }
    const chains = rules
      .filter((l) => /^-N (CNI|KUBE)-/.test(l))
      .map((l) => l.split(" ")[1] ?? "")
      .filter((c) => c.length > 0);
    for (const c of chains) run("iptables", ["-w", "-t", table, "-F", c]);
    for (const c of chains) run("iptables", ["-w", "-t", table, "-X", c]);
  }
}

/** What `removeIptablesState` removes that is still there: `<table> <chain>` and guard rules. */
export function iptablesLeftovers(): string[] {
  return ["filter", "nat", "mangle"].flatMap((table) =>
    run("iptables", ["-w", "-t", table, "-S"])
      .out.split("\n")
      .filter((l) => /^-N (CNI|KUBE)-/.test(l) || l.includes(`--comment ${GUARD}`))
      .map((l) => `iptables -t ${table}: ${l}`),
  );
}

/**
 * The network namespaces of the pods on `bridge` (the names under /run/netns the CNI plugins
 * gave them), read from the bridge's veths: their peers live in those namespaces. Read before
 * the bridge goes; after that nothing says which namespaces were this node's.
 */
export function podNetnsOnBridge(bridge: string): string[] {
  if (!linkExists(bridge)) return [];
  const links = JSON.parse(run("ip", ["-j", "link", "show", "master", bridge]).out || "[]") as {
    link_netnsid?: number;
  }[];
  const namespaces = JSON.parse(run("ip", ["-j", "netns", "list"]).out || "[]") as {
    name: string;
    id?: number;
  }[];
  return netnsOfPeers(links, namespaces);
}

/** The pure part of `podNetnsOnBridge`: which named namespaces the links' peers live in. */
export function netnsOfPeers(
  links: { link_netnsid?: number }[],
  namespaces: { name: string; id?: number }[],
): string[] {
  const ids = new Set(links.map((l) => l.link_netnsid).filter((id) => id !== undefined));
  return namespaces.filter((ns) => ns.id !== undefined && ids.has(ns.id)).map((ns) => ns.name);
}

/**
 * Deletes named network namespaces (`ip netns del`: unmounts and removes /run/netns/<name>);
 * once no process is left in one, the kernel frees it and the veth pair with it.
 */
export function removeNetns(names: string[]): void {
  for (const name of names) run("ip", ["netns", "del", name]);
}

/** Named network namespaces still there, of `names`. */
export function netnsLeft(names: string[]): string[] {
  return names.filter((n) => fs.existsSync(path.join("/run/netns", n)));
}

/** Whether a network link exists. */
export function linkExists(link: string): boolean {
  return run("ip", ["link", "show", link]).ok;
}

/** Splits an `iptables -S` rule into arguments, keeping double-quoted words together. */
export function splitRule(rule: string): string[] {
  const out: string[] = [];
  for (const m of rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? "");
  return out;
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m)
    .map((m) => m.replace(/\\040/g, " "))
    .filter((m) => m === root || m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything below `dir` (pod volumes, sandbox shm, overlay rootfs). */
export function unmountUnder(dir: string): string[] {
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return [];
    for (const m of mounts) run("umount", ["-l", m]);
  }
  return mountsUnder(dir);
}

/**
 * Pids of the runc shims a containerd started: they outlive it by design, and are told apart
 * from the shims of any other containerd (dockerd's) by the socket address on their command line.
 */
export function shimPids(containerdSocket: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!argv[0]?.includes("containerd-shim")) continue;
    const at = argv.indexOf("-address");
    if (at >= 0 && argv[at + 1] === containerdSocket) pids.push(Number(entry));
  }
  return pids;
}

export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * The kubelet's pod cgroups (`kubepods` in every cgroup v1 controller, or under the unified
 * hierarchy): kills the processes still in them (containers whose shims died with a crashed run)
 * and removes the cgroups, deepest first.
 */
export function removePodCgroups(root = "/sys/fs/cgroup"): void {
  const trees: string[] = [];
  for (const controller of fs.existsSync(root) ? fs.readdirSync(root) : []) {
    for (const candidate of [path.join(root, controller, "kubepods"), path.join(root, "kubepods")]) {
      if (fs.existsSync(candidate) && !trees.includes(candidate)) trees.push(candidate);
    }
  }
  const dirs: string[] = [];
  const walk = (dir: string) => {
    dirs.push(dir);
    for (const e of fs.readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  for (const t of trees) walk(t);
  for (const dir of dirs) {
    try {
      killPids(
        fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number),
      );
    } catch {
      // no such file in this controller
    }
  }
  for (const dir of dirs.sort((a, b) => b.length - a.length)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // busy for a moment, or already gone
    }
  }
}

/** The kubelet links each container's log into /var/log/containers; drop the links into `podLogsDir`. */
export function removeContainerLogLinks(podLogsDir: string): void {
  const dir = "/var/log/containers";
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    const link = path.join(dir, name);
    try {
      if (fs.readlinkSync(link).startsWith(`${podLogsDir}/`)) fs.rmSync(link);
    } catch {
      // not a link, or gone
    }
  }
}

/**
 * The kubelet's device-plugin socket: its path is fixed (not under `--root-dir`), and the
 * kubelet leaves it behind when it stops.
 */
export const KUBELET_DEVICE_PLUGIN_SOCKET = "/var/lib/kubelet/device-plugins/kubelet.sock";

/** Paths of the unix sockets something listens on, from /proc/net/unix (its last column). */
export function listeningUnixPaths(procNetUnix: string): Set<string> {
  const paths = new Set<string>();
  for (const line of procNetUnix.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode [Path]; flag 00010000 is __SO_ACCEPTCON (listening).
    if (fields.length >= 8 && fields[3] === "00010000") paths.add(fields.slice(7).join(" "));
  }
  return paths;
}

/** Whether the kubelet's device-plugin socket is there with no kubelet listening on it. */
export function staleKubeletSocket(): boolean {
  return (
    fs.existsSync(KUBELET_DEVICE_PLUGIN_SOCKET) &&
    !listeningUnixPaths(fs.readFileSync("/proc/net/unix", "utf8")).has(KUBELET_DEVICE_PLUGIN_SOCKET)
  );
}

/**
 * Removes the socket a stopped kubelet left (one a live kubelet listens on stays), and the
 * directories it sits in when nothing else is in them.
 */
export function removeStaleKubeletSocket(): void {
  if (!staleKubeletSocket()) return;
  fs.rmSync(KUBELET_DEVICE_PLUGIN_SOCKET, { force: true });
  for (let dir = path.dirname(KUBELET_DEVICE_PLUGIN_SOCKET); dir !== "/var/lib"; dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      return; // not empty: someone else's
    }
  }
}

/** Sets a sysctl and returns its previous value (to put back at teardown). */
export function setSysctl(key: string, value: string): string {
  const file = `/proc/sys/${key.replace(/\./g, "/")}`;
  const before = fs.readFileSync(file, "utf8").trim();
  if (before !== value) fs.writeFileSync(file, value);
  return before;
}

/** Debian packages the real node needs, with a path or command that proves each is installed. */
const HOST_PACKAGES: [string, string][] = [
  ["iptables", "iptables"],
  ["runc", "docker.io"],
  ["dockerd", "docker.io"],
  ["/usr/lib/cni/bridge", "containernetworking-plugins"],
  ["/usr/lib/cni/host-local", "containernetworking-plugins"],
  ["/usr/lib/cni/firewall", "containernetworking-plugins"],
  ["/usr/lib/cni/portmap", "containernetworking-plugins"],
  ["/usr/lib/cni/loopback", "containernetworking-plugins"],
  ["debootstrap", "debootstrap"],
  ["openssl", "openssl"],
];

function onPath(cmd: string): boolean {
  if (cmd.startsWith("/")) return fs.existsSync(cmd);
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/sbin"];
  return dirs.some((d) => d && fs.existsSync(path.join(d, cmd)));
}

/** Throws, naming the exact install command, when the machine cannot run a real node. */
export function checkHost(): void {
  const missing = [...new Set(HOST_PACKAGES.filter(([what]) => !onPath(what)).map(([, pkg]) => pkg))];
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing Debian packages: apt-get install -y ${missing.join(" ")}`);
  if (process.getuid?.() !== 0) {
    problems.push("a real node needs root (network links, iptables, mounts): run the tests as root");
  }
  if (problems.length > 0)
    throw new Error(`this machine cannot run the real-cluster tests:\n  ${problems.join("\n  ")}`);
}

/** Runs a command, returning stdout; errors carry stderr. */
export function exec(cmd: string, args: string[], input?: string | Buffer): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 64 << 20,
  });
}

/**
 * Runs a command without blocking the event loop (kubectl waits, image imports), returning
 * stdout; errors carry the command and its stderr. The harness's own loops (the volume
 * provisioner) keep running meanwhile.
 */
export function execAsync(cmd: string, args: string[], input?: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new Error(`${path.basename(cmd)} ${args.join(" ")} failed: ${stderr.trim() || err.message}`, {
            cause: err,
          }),
        );
      } else resolve(stdout);
    });
    child.stdin?.end(input);
  });
}
