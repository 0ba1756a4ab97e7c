import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The certificates of a one-node cluster, made with openssl: one CA signs the API server's
 * serving certificate, the kubelet's, and a client certificate per component (the subject's
 * CN/O are the user and groups the API server's RBAC sees). Existing files are kept, so a
 * restarted cluster keeps trusting its own nodes and clients.
 */
export interface ClusterPki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  /** ServiceAccount token signing key pair. */
  readonly saKey: string;
  readonly saPub: string;
  cert(name: string): { cert: string; key: string };
}

const CLIENTS: Record<string, string> = {
  "apiserver-kubelet-client": "/O=system:masters/CN=kube-apiserver-kubelet-client",
  admin: "/O=system:masters/CN=admin",
  "kube-proxy": "/CN=system:kube-proxy",
  "controller-manager": "/CN=system:kube-controller-manager",
  scheduler: "/CN=system:kube-scheduler",
  // CoreDNS only lists and watches Services, EndpointSlices, Namespaces and Pods; it runs on
  // the host with the same trust as the control plane, so it gets the admin group.
  coredns: "/O=system:masters/CN=coredns",
};

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function ensurePki(dir: string, node: { name: string; ip: string }): ClusterPki {
  fs.mkdirSync(dir, { recursive: true });
  const file = (f: string) => path.join(dir, f);
  if (!fs.existsSync(file("ca.key"))) {
    openssl(
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"].concat([
        "-days",
        "3650",
        "-subj",
        "/CN=obol-realnode-ca",
      ]),
      dir,
    );
  }
  const issue = (name: string, subject: string, san?: string) => {
    if (fs.existsSync(file(`${name}.crt`))) return;
    openssl(
      [
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subject,
      ],
      dir,
    );
    fs.writeFileSync(
      file(`${name}.ext`),
      [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth",
        ...(san ? [`subjectAltName=${san}`] : []),
        "",
      ].join("\n"),
    );
    openssl(
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"].concat([
        "-days",
        "3650",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.crt`,
      ]),
      dir,
    );
    fs.rmSync(file(`${name}.csr`));
    fs.rmSync(file(`${name}.ext`));
  };
  issue(
    "apiserver",
    "/CN=kube-apiserver",
    [
      "DNS:kubernetes",
      "DNS:kubernetes.default",
      "DNS:kubernetes.default.svc",
      "DNS:kubernetes.default.svc.cluster.local",
      "DNS:localhost",
      "IP:127.0.0.1",
      // The first address of the Service range: Service `kubernetes` (pods' in-cluster config).
      "IP:10.96.0.1",
      `IP:${node.ip}`,
    ].join(","),
  );
  issue("kubelet", `/O=system:nodes/CN=system:node:${node.name}`, `DNS:${node.name},IP:${node.ip}`);
  for (const [name, subject] of Object.entries(CLIENTS)) issue(name, subject);
  if (!fs.existsSync(file("sa.key"))) {
    openssl(["genrsa", "-out", "sa.key", "2048"], dir);
    openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
  }
  return {
    dir,
    caCert: file("ca.crt"),
    caKey: file("ca.key"),
    saKey: file("sa.key"),
    saPub: file("sa.pub"),
    cert: (name) => ({ cert: file(`${name}.crt`), key: file(`${name}.key`) }),
  };
}

/** A kubeconfig for one component, referring to its certificate files. */
export function certKubeconfig(pki: ClusterPki, server: string, user: string): string {
  const { cert, key } = pki.cert(user);
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: realnode",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority: ${pki.caCert}`,
    "users:",
    `- name: ${user}`,
    "  user:",
    `    client-certificate: ${cert}`,
    `    client-key: ${key}`,
    "contexts:",
    "- name: realnode",
    `  context: {cluster: realnode, user: ${user}}`,
    "current-context: realnode",
    "",
  ].join("\n");
}
