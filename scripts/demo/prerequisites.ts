/**
 * What `npm run demo` needs from the machine before it starts anything, as one pure decision:
 * the demo turns the first problem into one line naming what is missing and the command that
 * fixes it, instead of a stack trace from deep inside the harness.
 */

/** A prerequisite the demo found missing; `message` is the one line the demo prints. */
export class MissingPrerequisite extends Error {
  override name = "MissingPrerequisite";
  constructor(
    /** What is missing, e.g. "no Docker engine (dockerd)". */
    readonly what: string,
    /** The command or step that fixes it. */
    readonly fix: string,
  ) {
    super(`${what}: ${fix}`);
  }
}

/** What the check reads from the machine (the demo passes the real one; tests a fake). */
export interface DemoHost {
  /** The effective user id; undefined where the platform has none. */
  readonly uid: number | undefined;
  /** Whether `bin` is on PATH (or, for an absolute path, whether that file exists). */
  has(bin: string): boolean;
}

/** The pinned toolchain's binaries the demo runs (all built by `npm run tools`). */
const TOOLCHAIN = ["pulumi", "kube-apiserver", "kubelet", "kubectl", "containerd", "etcd", "coredns"];

/** Debian packages, each with the files that prove it is installed and how it is named when missing. */
const PACKAGES: { pkg: string; proof: string[]; what: string }[] = [
  {
    pkg: "docker.io",
    proof: ["dockerd", "docker", "runc"],
    what: "no Docker engine (dockerd, docker, runc)",
  },
  { pkg: "debootstrap", proof: ["debootstrap"], what: "no debootstrap (the test images' Debian base)" },
  {
    pkg: "containernetworking-plugins",
    proof: ["bridge", "host-local", "firewall", "portmap", "loopback"].map((p) => `/usr/lib/cni/${p}`),
    what: "the CNI plugins are missing (/usr/lib/cni)",
  },
  { pkg: "iptables", proof: ["iptables"], what: "no iptables" },
  { pkg: "openssl", proof: ["openssl"], what: "no openssl" },
];

/**
 * The first thing that keeps the demo from running here, in the order a newcomer fixes them
 * (root, the toolchain, the npm dependencies, the Debian packages); undefined when none.
 * Missing Debian packages are named together, with one `apt-get install` for all of them.
 */
export function missingPrerequisite(host: DemoHost, anvil: string): MissingPrerequisite | undefined {
  if (host.uid !== 0)
    return new MissingPrerequisite(
      "not root",
      "the real node adds a network link, a bridge, iptables chains and mounts; run `sudo npm run demo`",
    );
  const tools = TOOLCHAIN.filter((b) => !host.has(b));
  if (tools.length > 0)
    return new MissingPrerequisite(
      `the pinned toolchain is not built (no ${tools.join(", ")})`,
      "run `npm run tools` once (see the README's set-up)",
    );
  if (!host.has(anvil))
    return new MissingPrerequisite("the npm dependencies are not installed (no anvil)", "run `npm ci`");
  const missing = PACKAGES.filter((p) => p.proof.some((f) => !host.has(f)));
  if (missing.length > 0)
    return new MissingPrerequisite(
      missing.map((p) => p.what).join(", "),
      `apt-get install -y ${missing.map((p) => p.pkg).join(" ")}`,
    );
  return undefined;
}
