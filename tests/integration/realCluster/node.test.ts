import * as assert from "node:assert/strict";
import * as path from "node:path";
import { sharedRealCluster } from "../../harness/env";
import { portForward } from "../../harness/portForward";
import { alive } from "../../harness/processes";
import { finishedPodLog, type RealCluster } from "../../harness/realCluster";

/**
 * The real node itself: pods run in containerd, probes are real HTTP, Services route through
 * kube-proxy, names resolve through CoreDNS, volumes are provisioned and mounted. Everything
 * runs the test Node.js image (`gcr.io/distroless/nodejs22-debian12:nonroot`, built locally).
 */

const NODE_IMAGE = "gcr.io/distroless/nodejs22-debian12:nonroot";

/** An HTTP server counting its hits in a file on its volume; it also reports what it can do. */
const SERVER = `
const fs = require("node:fs"), http = require("node:http"), os = require("node:os");
const file = "/data/hits";
http.createServer((req, res) => {
  if (req.url === "/healthz") return res.end("ok");
  const hits = Number(fs.existsSync(file) ? fs.readFileSync(file, "utf8") : 0) + 1;
  fs.writeFileSync(file, String(hits));
  let rootfsWritable = true;
  try { fs.writeFileSync("/probe", "x"); } catch { rootfsWritable = false; }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ host: os.hostname(), uid: process.getuid(), rootfsWritable, hits }));
}).listen(8080);
`;

/** A client pod: the Service by DNS name, the API server by Service `kubernetes`, a dead Service IP. */
const CLIENT = `
const dns = require("node:dns").promises, fs = require("node:fs"), http = require("node:http"), net = require("node:net");
const out = (k, v) => console.log(JSON.stringify({ [k]: v }));
(async () => {
  out("address", (await dns.lookup("web." + process.env.NS + ".svc.cluster.local")).address);
  // A new connection per request (fetch would keep one alive, always to the same pod), until
  // both replicas answered or 60 tries: kube-proxy picks a backend per connection.
  const get = () => new Promise((resolve, reject) => {
    http.get("http://web:8080/", { agent: false }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c)).on("end", () => resolve(JSON.parse(body).host));
    }).on("error", reject);
  });
  // kube-proxy programs a new Service within its sync period; until then the node's guard
  // refuses the Service IP (as checked below for an unknown one): a refused first try waits.
  const first = async () => {
    for (let i = 0; ; i++) {
      try { return await get(); } catch (e) {
        if (e.code !== "ECONNREFUSED" || i >= 60) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const hosts = new Set([await first()]);
  for (let i = 0; i < 60 && hosts.size < 2; i++) hosts.add(await get());
  out("hosts", [...hosts].sort());
  const token = fs.readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/token", "utf8");
  const res = await fetch("https://kubernetes.default.svc/version", { headers: { authorization: "Bearer " + token } });
  out("apiVersion", (await res.json()).gitVersion);
  const connect = (host) => new Promise((resolve) => {
    const s = net.connect({ host, port: 80 });
    s.setTimeout(5000, () => { s.destroy(); resolve("timeout"); });
    s.on("connect", () => { s.destroy(); resolve("connected"); });
    s.on("error", (e) => resolve(e.code));
  });
  out("unprogrammedServiceIp", await connect("10.96.255.254"));
  // TEST-NET-1: off the pod network, so the default route would take it off the machine.
  out("offMachine", await connect("192.0.2.1"));
  out("externalName", await dns.lookup("example.com").then(() => "resolved", (e) => e.code));
})().catch((e) => { console.error(e); process.exit(1); });
`;

function manifests(ns: string): unknown[] {
  const security = {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "web-data", namespace: ns },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "16Mi" } } },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: ns },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            automountServiceAccountToken: false,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 },
            containers: [
              {
                name: "web",
                image: NODE_IMAGE,
                imagePullPolicy: "Never",
                args: ["-e", SERVER],
                ports: [{ name: "http", containerPort: 8080 }],
                readinessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 1 },
                livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 5 },
                securityContext: security,
                resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
                volumeMounts: [{ name: "data", mountPath: "/data" }],
              },
            ],
            volumes: [{ name: "data", persistentVolumeClaim: { claimName: "web-data" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: ns },
      spec: { selector: { app: "web" }, ports: [{ port: 8080, targetPort: "http" }] },
    },
  ];
}

function clientPod(ns: string): unknown {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "client", namespace: ns },
    spec: {
      restartPolicy: "Never",
      securityContext: { runAsNonRoot: true, runAsUser: 65532 },
      containers: [
        {
          name: "client",
          image: NODE_IMAGE,
          imagePullPolicy: "Never",
          args: ["-e", CLIENT],
          env: [
            { name: "NS", value: ns },
            // Node's fetch trusts only its own roots: add the cluster CA every pod is given.
            { name: "NODE_EXTRA_CA_CERTS", value: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" },
          ],
          securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
        },
      ],
    },
  };
}

type Pod = {
  metadata: { name: string };
  spec: { containers: { name: string }[] };
  status: { phase: string; podIP?: string; containerStatuses?: { ready: boolean; restartCount: number }[] };
};

describe("a real node", function () {
  this.timeout(10 * 60_000);
  const ns = `node-proof-${process.pid}`;
  let cluster: RealCluster;
  const pods = async () =>
    (JSON.parse(await cluster.kubectl(["-n", ns, "get", "pods", "-l", "app=web", "-o", "json"])).items ??
      []) as Pod[];

  // The Deployment is applied once, by the first test that needs it: each test stands alone.
  let webStep: Promise<void> | undefined;
  const webUp = () =>
    (webStep ??= (async () => {
      await cluster.kubectl(
        ["apply", "-f", "-"],
        manifests(ns)
          .map((m) => JSON.stringify(m))
          .join("\n"),
      );
      await cluster.kubectl(["-n", ns, "rollout", "status", "deployment/web", "--timeout=180s"]);
    })());

  before(async () => {
    cluster = await sharedRealCluster(["distroless"]);
  });

  after(async () => {
    await cluster?.kubectl(["delete", "namespace", ns, "--wait=false", "--ignore-not-found"]);
  });

  it("runs a Deployment's pods, Ready through their HTTP probes, non-root on a read-only root fs, with a bound volume", async () => {
    await webUp();
    const running = await pods();
    assert.equal(running.length, 2);
    for (const pod of running) {
      assert.equal(pod.status.phase, "Running");
      assert.deepEqual(
        pod.status.containerStatuses?.map((c) => [c.ready, c.restartCount]),
        [[true, 0]],
      );
      // The host reaches pod IPs on the node's bridge: the app answers as uid 65532, read-only.
      const res = await fetch(`http://${pod.status.podIP}:8080/`);
      const body = (await res.json()) as { host: string; uid: number; rootfsWritable: boolean };
      assert.equal(body.host, pod.metadata.name);
      assert.equal(body.uid, 65532);
      assert.equal(body.rootfsWritable, false);
    }
    const claim = JSON.parse(await cluster.kubectl(["-n", ns, "get", "pvc", "web-data", "-o", "json"]));
    assert.equal(claim.status.phase, "Bound");
    assert.equal(claim.spec.storageClassName, cluster.storageClass, "the default StorageClass applies");
  });

  it("routes a Service by its DNS name, reaches the API server as Service kubernetes, and refuses what is not programmed", async () => {
    await webUp();
    await cluster.kubectl(["apply", "-f", "-"], JSON.stringify(clientPod(ns)));
    const results = Object.assign(
      {},
      ...(await finishedPodLog(cluster, ns, "client"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    );
    const service = JSON.parse(await cluster.kubectl(["-n", ns, "get", "service", "web", "-o", "json"]));
    assert.equal(results.address, service.spec.clusterIP);
    assert.deepEqual(
      results.hosts,
      (await pods()).map((p) => p.metadata.name).sort(),
      "both replicas answer",
    );
    assert.equal(results.apiVersion, "v1.36.3");
    assert.equal(
      results.unprogrammedServiceIp,
      "ECONNREFUSED",
      "an unknown Service IP is rejected on the node",
    );
    assert.equal(results.offMachine, "ECONNREFUSED", "nothing a pod sends leaves the machine");
    assert.notEqual(results.externalName, "resolved", "names outside the cluster do not resolve");
  });

  it("keeps a volume's data across pods, and kubectl exec and logs work", async () => {
    await webUp();
    const before = await pods();
    const first = before[0];
    assert.ok(first, "the Deployment has pods");
    const hits = (await (await fetch(`http://${first.status.podIP}:8080/`)).json()) as { hits: number };
    await cluster.kubectl(["-n", ns, "delete", "pods", "-l", "app=web", "--wait=true"]);
    await cluster.kubectl(["-n", ns, "rollout", "status", "deployment/web", "--timeout=180s"]);
    const after = (await pods()).filter((p) => !before.some((b) => b.metadata.name === p.metadata.name));
    const replacement = after[0];
    assert.ok(replacement && after.length === 2, "both pods were replaced");
    const stored = await cluster.kubectl([
      "-n",
      ns,
      "exec",
      replacement.metadata.name,
      "--",
      "/nodejs/bin/node",
      "-e",
      "process.stdout.write(require('fs').readFileSync('/data/hits', 'utf8'))",
    ]);
    assert.ok(Number(stored) >= hits.hits, `the count (${stored}) survived the pods (was ${hits.hits})`);
  });

  it("forwards a Service to this machine's loopback (kubectl port-forward, as the demo opens the storefront), until stopped", async () => {
    await webUp();
    const forward = await portForward({
      kubeconfigPath: cluster.kubeconfigPath,
      namespace: ns,
      service: "web",
      port: 8080,
      logDir: path.join(cluster.dir, "logs"),
    });
    const pid = forward.process.child.pid ?? 0;
    try {
      assert.match(forward.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${forward.url}/`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { host: string; hits: number };
      assert.match(body.host, /^web-/, "a pod of the Service answered");
      assert.ok(
        forward.command.includes(`port-forward --address 127.0.0.1 svc/web ${forward.localPort}:8080`),
      );
    } finally {
      await forward.process.stop();
    }
    assert.equal(alive(pid), false, "kubectl is gone once stopped");
    await assert.rejects(fetch(`${forward.url}/healthz`), "nothing listens after stop");
  });
});
