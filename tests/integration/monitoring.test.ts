/**
 * Scrape objects and the HA gateway through the real program (`pulumi up`, Automation API) on
 * the test control plane:
 *   - `monitoring.serviceMonitors` left at its default (`auto`) creates nothing and fails nothing
 *     on a cluster without the Prometheus Operator's CRDs; `true` there fails the preview naming
 *     the field; with the CRDs installed (tests/fixtures/monitoring/crds.yaml) `auto` creates a
 *     ServiceMonitor per Service with metrics, a PodMonitor for the controller, the
 *     PrometheusRule and the dashboard ConfigMap; `false` removes them again.
 *   - `gateway.replicas: 2` gives two replicas, a PodDisruptionBudget and anti-affinity.
 *   - The tunnel's origin is the gateway's public Service, which has no metrics port.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { parseAllDocuments } from "yaml";
import { COMPONENTS, PORTS } from "../../api/contract";
import { selectorFor } from "../../components/labels";
import { MONITORING_CRDS } from "../../components/monitoring";
import { missingMonitoringCrds } from "../../program/monitoring";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { waitFor } from "../harness/processes";
import { programStack, REPO_ROOT } from "../harness/project";
import { outputCollector } from "../harness/pulumi";
import { api } from "./runtime/helpers";

const CRDS = parseAllDocuments(
  fs.readFileSync(path.join(REPO_ROOT, "tests/fixtures/monitoring/crds.yaml"), "utf8"),
).map((d) => d.toJSON() as { metadata: { name: string } });

interface Item {
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

describe("monitoring objects and the HA gateway (pulumi up on the control plane)", function () {
  this.timeout(20 * 60_000);
  const namespace = `mon-${process.pid}`;
  const log = outputCollector();
  let cp: ControlPlane;
  let stack: Stack;

  const list = async (apiPath: string): Promise<Item[]> => {
    const res = await api(cp, "GET", apiPath);
    return res.status === 200 ? res.json<{ items: Item[] }>().items : [];
  };
  const monitoringObjects = async () => {
    const base = `/apis/monitoring.coreos.com/v1/namespaces/${namespace}`;
    return {
      serviceMonitors: await list(`${base}/servicemonitors`),
      podMonitors: await list(`${base}/podmonitors`),
      rules: await list(`${base}/prometheusrules`),
    };
  };
  const dashboard = () => api(cp, "GET", `/api/v1/namespaces/${namespace}/configmaps/obol-stack-dashboard`);
  const setServiceMonitors = (value: string | boolean) =>
    stack.setConfig("obol-stack:monitoring", { value: JSON.stringify({ serviceMonitors: value }) });
  const deleteCrds = async () => {
    for (const crd of CRDS)
      await api(cp, "DELETE", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
    // Other test files share this API server: leave it without the CRDs, not with terminating ones.
    await waitFor(
      "the monitoring CRDs to be gone",
      async () => (await missingMonitoringCrds(cp.kubeconfig)).length === MONITORING_CRDS.length,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  };

  before(async () => {
    const dir = scratchDir("monitoring");
    cp = await sharedControlPlane();
    stack = await programStack({
      dir,
      stackName: "mon",
      fromDevStack: false,
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cp.kubeconfig, secret: true },
        "obol-stack:namespace": { value: namespace },
        "obol-stack:tunnel": { value: JSON.stringify({ mode: "quick" }) },
        "obol-stack:facilitator": {
          value: JSON.stringify({ mode: "self", rpcUrl: "http://127.0.0.1:8545" }),
        },
        "obol-stack:facilitatorSignerKey": { value: `0x${"11".repeat(32)}`, secret: true },
        "obol-stack:gateway": { value: JSON.stringify({ replicas: 2 }) },
        // monitoring is left unset: the default is auto.
      },
    });
  });

  after(async () => {
    await stack?.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    if (cp) await deleteCrds();
  });

  it("default (auto) without the Prometheus Operator CRDs: up succeeds with no scrape objects; two gateway replicas with a PDB and anti-affinity", async () => {
    assert.deepEqual(await missingMonitoringCrds(cp.kubeconfig), [...MONITORING_CRDS]);
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.deepEqual(up.outputs.monitoring?.value, []);
    assert.equal(up.outputs.monitoring?.secret, false, "the decision is not a secret");
    assert.equal((await dashboard()).status, 404);

    const deployment = (
      await api(cp, "GET", `/apis/apps/v1/namespaces/${namespace}/deployments/${COMPONENTS.gateway}`)
    ).json<{
      spec: {
        replicas: number;
        template: {
          spec: {
            affinity?: { podAntiAffinity?: unknown };
            containers: { env?: { name: string; value?: string }[] }[];
          };
        };
      };
      status: { readyReplicas?: number };
    }>();
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(deployment.status.readyReplicas, 2);
    assert.deepEqual(deployment.spec.template.spec.affinity?.podAntiAffinity, {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: "kubernetes.io/hostname",
            labelSelector: { matchLabels: selectorFor(COMPONENTS.gateway) },
          },
        },
      ],
    });
    assert.deepEqual(
      deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === "GATEWAY_REPLICAS"),
      { name: "GATEWAY_REPLICAS", value: "2" },
      "each replica enforces half of every offer limit",
    );
    const pdb = await api(
      cp,
      "GET",
      `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${COMPONENTS.gateway}`,
    );
    assert.equal(pdb.status, 200, pdb.body);
    assert.equal(pdb.json<{ spec: { maxUnavailable: number } }>().spec.maxUnavailable, 1);
  });

  it("true without the CRDs fails the preview before anything is declared, naming the field and the fix", async () => {
    // A stack of its own with no state: the check runs before any resource, so there is nothing
    // to refresh (a failing program on a stack with state took minutes to be reported).
    const fresh = await programStack({
      dir: scratchDir("monitoring-true"),
      stackName: "mon-true",
      fromDevStack: false,
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cp.kubeconfig, secret: true },
        "obol-stack:namespace": { value: `${namespace}-true` },
        "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
        "obol-stack:monitoring": { value: JSON.stringify({ serviceMonitors: true }) },
      },
    });
    const out = outputCollector();
    await assert.rejects(fresh.preview({ onOutput: out.onOutput }), (err: Error) => {
      assert.match(
        `${err.message}\n${out.text()}`,
        /monitoring\.serviceMonitors is true, but the cluster does not serve servicemonitors\.monitoring\.coreos\.com.*install the Prometheus Operator.*or set monitoring\.serviceMonitors to auto or false/s,
      );
      return true;
    });
  });

  it("auto with the CRDs: a ServiceMonitor per Service with metrics, a PodMonitor for the controller, the alerts and the dashboard; none reachable through the tunnel", async () => {
    for (const crd of CRDS) {
      const res = await api(cp, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
      assert.ok([201, 409].includes(res.status), res.body);
    }
    await waitFor(
      "the monitoring CRDs to be established",
      async () => (await missingMonitoringCrds(cp.kubeconfig)).length === 0,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.deepEqual([...((up.outputs.monitoring?.value ?? []) as string[])].sort(), [
      `PodMonitor/${COMPONENTS.controller}`,
      `ServiceMonitor/${COMPONENTS.buyer}`,
      `ServiceMonitor/${COMPONENTS.facilitator}`,
      `ServiceMonitor/${COMPONENTS.gateway}`,
    ]);

    const { serviceMonitors, podMonitors, rules } = await monitoringObjects();
    assert.deepEqual(serviceMonitors.map((s) => s.metadata.name).sort(), [
      COMPONENTS.buyer,
      COMPONENTS.facilitator,
      COMPONENTS.gateway,
    ]);
    const gatewayMonitor = serviceMonitors.find((s) => s.metadata.name === COMPONENTS.gateway);
    assert.deepEqual(gatewayMonitor?.spec.endpoints, [
      { port: "internal", path: "/metrics", interval: "30s" },
    ]);
    assert.deepEqual(
      podMonitors.map((p) => [p.metadata.name, p.spec.podMetricsEndpoints]),
      [[COMPONENTS.controller, [{ port: "http", path: "/metrics", interval: "30s" }]]],
    );
    const groups = (rules[0]?.spec.groups ?? []) as { rules: { alert: string }[] }[];
    const alerts = groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const a of [
      "ObolSettleFailures",
      "ObolFacilitatorUnreachable",
      "ObolSignerBalanceLow",
      "ObolBudgetNearlySpent",
    ])
      assert.ok(alerts.includes(a), `${a} in ${alerts.join(", ")}`);
    const cm = (await dashboard()).json<{
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    }>();
    assert.equal(cm.metadata.labels.grafana_dashboard, "1");
    assert.equal(JSON.parse(cm.data["obol-stack.json"] ?? "{}").uid, "obol-stack");

    // The tunnel forwards to the gateway's public Service, whose only port is the public one;
    // the gateway's metrics live on the internal Service, which the tunnel never names.
    const ports = async (name: string) =>
      (await api(cp, "GET", `/api/v1/namespaces/${namespace}/services/${name}`))
        .json<{ spec: { ports: { name: string; port: number }[] } }>()
        .spec.ports.map((p) => `${p.name}:${p.port}`);
    assert.deepEqual(await ports(COMPONENTS.gateway), [`http:${PORTS.gateway}`]);
    assert.deepEqual(await ports(`${COMPONENTS.gateway}-internal`), [`internal:${PORTS.gatewayInternal}`]);
    const tunnel = (
      await api(cp, "GET", `/apis/apps/v1/namespaces/${namespace}/deployments/${COMPONENTS.cloudflared}`)
    ).json<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>();
    const args = tunnel.spec.template.spec.containers[0]?.args ?? [];
    assert.equal(
      args[args.indexOf("--url") + 1],
      `http://${COMPONENTS.gateway}.${namespace}.svc:${PORTS.gateway}`,
      args.join(" "),
    );
    assert.ok(!args.join(" ").includes(`:${PORTS.gatewayInternal}`), args.join(" "));
    for (const target of [COMPONENTS.buyer, COMPONENTS.facilitator, COMPONENTS.controller])
      assert.ok(
        !args.join(" ").includes(target),
        `${target} reachable through the tunnel: ${args.join(" ")}`,
      );
  });

  it("false removes them again", async () => {
    await setServiceMonitors("false");
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.deepEqual(up.outputs.monitoring?.value, []);
    const left = await monitoringObjects();
    assert.deepEqual(
      [left.serviceMonitors, left.podMonitors, left.rules].map((l) => l.length),
      [0, 0, 0],
    );
    assert.equal((await dashboard()).status, 404);
  });
});
